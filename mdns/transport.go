package mdns

import (
	"net"
	"net/netip"
)

// transport is the responder's socket: a net.PacketConn given to New, or
// the interface-bound one of Listen.
type transport interface {
	// ReadFrom reads one datagram; src is invalid for one to ignore.
	ReadFrom(b []byte) (n int, src netip.AddrPort, err error)
	WriteTo(b []byte, dst netip.AddrPort) error
	Close() error
}

type plainConn struct{ c net.PacketConn }

func (p plainConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, a, err := p.c.ReadFrom(b)
	return n, addrPort(a), err
}

func (p plainConn) WriteTo(b []byte, dst netip.AddrPort) error {
	_, err := p.c.WriteTo(b, net.UDPAddrFromAddrPort(dst))
	return err
}

func (p plainConn) Close() error { return p.c.Close() }

// addrPort is a's address and port, invalid for anything but UDP.
func addrPort(a net.Addr) netip.AddrPort {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
