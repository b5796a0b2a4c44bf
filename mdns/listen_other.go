//go:build !unix

package mdns

import (
	"errors"
	"syscall"
)

// reuseAddr: Listen needs a Unix socket API; New takes any PacketConn.
func reuseAddr(_, _ string, _ syscall.RawConn) error {
	return errors.New("mdns: Listen is implemented for Unix systems only; use New with a socket of your own")
}
