//go:build unix

package mdns

import "syscall"

// reuseAddr lets the socket share port 5353 with the host's other mDNS
// sockets (Avahi, a browser), as they all set SO_REUSEADDR.
func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
