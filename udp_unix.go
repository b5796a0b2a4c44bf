//go:build unix

package shellyws

import (
	"errors"
	"net"
	"strconv"
	"syscall"
)

// readDatagram reads the next datagram of conn into a pooled buffer,
// returning it, the datagram's length and its sender. On a socket it takes
// the buffer only once a datagram has arrived, so a listener that waits
// holds none: 10,000 devices listening must not mean 640 MB of buffers.
// n may exceed MaxDatagram only for a datagram that was cut to fit.
func readDatagram(conn net.PacketConn) (bp *[]byte, n int, from net.Addr, err error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return readDatagramBlocking(conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return readDatagramBlocking(conn)
	}
	var sa syscall.Sockaddr
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		bp = getDatagramBuf()
		n, sa, rerr = syscall.Recvfrom(int(fd), *bp, 0)
		if errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) {
			putDatagramBuf(bp)
			bp = nil
			return false // wait for the next datagram without a buffer
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		putDatagramBuf(bp)
		if errors.Is(err, syscall.EBADF) {
			err = net.ErrClosed
		}
		return nil, 0, nil, err
	}
	return bp, n, sockaddrToUDP(sa), nil
}

func sockaddrToUDP(sa syscall.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.UDPAddr{IP: net.IP(append([]byte(nil), a.Addr[:]...)), Port: a.Port}
	case *syscall.SockaddrInet6:
		addr := &net.UDPAddr{IP: net.IP(append([]byte(nil), a.Addr[:]...)), Port: a.Port}
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				addr.Zone = ifi.Name
			} else {
				addr.Zone = strconv.Itoa(int(a.ZoneId))
			}
		}
		return addr
	}
	return nil
}
