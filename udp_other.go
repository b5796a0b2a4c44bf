//go:build !unix

package shellyws

import "net"

// readDatagram reads the next datagram of conn into a pooled buffer; here
// the wait holds the buffer.
func readDatagram(conn net.PacketConn) (bp *[]byte, n int, from net.Addr, err error) {
	return readDatagramBlocking(conn)
}
