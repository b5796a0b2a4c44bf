package mdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// Listen starts a Responder on the named interface only: a socket on
// 224.0.0.251:5353 that joins the group on that interface, sends its
// multicasts there with IP TTL 255 (RFC 6762 section 11) and multicast
// loopback on, so a browser on the same host sees the answers, and drops
// queries that arrived on any other interface. Services without Addrs get
// the interface's IPv4 addresses; messages are sized to its MTU.
//
// The socket is bound to the group address, not to 0.0.0.0, so unicast
// datagrams to port 5353 still reach the host's own mDNS stack (Avahi, a
// browser); the responder does not see queries unicast to it.
//
// Every error names the interface.
func Listen(ifname string, opts ...Option) (*Responder, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("mdns: interface %q: %w", ifname, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("mdns: interface %s is down", ifname)
	}
	if ifi.Flags&net.FlagMulticast == 0 {
		return nil, fmt.Errorf("mdns: interface %s has multicast off (ip link set %s multicast on)", ifname, ifname)
	}
	addrs, err := ifaceIPv4(ifi)
	if err != nil {
		return nil, fmt.Errorf("mdns: interface %s: %w", ifname, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("mdns: interface %s has no IPv4 address", ifname)
	}

	lc := net.ListenConfig{Control: reuseAddr}
	c, err := lc.ListenPacket(context.Background(), "udp4", mdnsGroup.String())
	if err != nil {
		return nil, fmt.Errorf("mdns: interface %s: %w", ifname, err)
	}
	p := ipv4.NewPacketConn(c)
	group := &net.UDPAddr{IP: net.IP(mdnsGroup.Addr().AsSlice())}
	for _, step := range []struct {
		what string
		err  error
	}{
		{"joining 224.0.0.251", p.JoinGroup(ifi, group)},
		{"setting the multicast interface", p.SetMulticastInterface(ifi)},
		{"setting the multicast TTL", p.SetMulticastTTL(255)},
		{"setting the TTL", p.SetTTL(255)},
		{"setting multicast loopback", p.SetMulticastLoopback(true)},
		{"asking for the arrival interface", p.SetControlMessage(ipv4.FlagInterface, true)},
	} {
		if step.err != nil {
			c.Close()
			return nil, fmt.Errorf("mdns: interface %s: %s: %w", ifname, step.what, step.err)
		}
	}
	size := maxPacketCeiling
	if ifi.MTU > 0 {
		size = min(max(ifi.MTU-28, minPacket), size)
	}
	opts = append([]Option{WithAddrs(addrs...), WithMaxPacket(size)}, opts...)
	return start(&ifaceConn{p: p, index: ifi.Index}, opts)
}

// ifaceIPv4 lists ifi's IPv4 addresses.
func ifaceIPv4(ifi *net.Interface) ([]netip.Addr, error) {
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// ifaceConn is Listen's socket: it keeps only what arrived on its
// interface (a socket bound to the group also gets the group's traffic of
// interfaces other sockets joined it on).
type ifaceConn struct {
	p     *ipv4.PacketConn
	index int
}

func (c *ifaceConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, cm, src, err := c.p.ReadFrom(b)
	if err != nil || cm == nil || cm.IfIndex != c.index {
		return n, netip.AddrPort{}, err
	}
	return n, addrPort(src), nil
}

func (c *ifaceConn) WriteTo(b []byte, dst netip.AddrPort) error {
	_, err := c.p.WriteTo(b, nil, net.UDPAddrFromAddrPort(dst))
	return err
}

func (c *ifaceConn) Close() error { return c.p.Close() }
