package evws

import "net"

// tlsIO is the transport under a polled TLS connection. The handshake
// reads the socket as usual; once polled, reads take only the bytes the
// poller fed in and then report a temporary error, which crypto/tls passes
// up without failing the connection, keeping a partial record for the next
// read. Writes go to the socket.
type tlsIO struct {
	net.Conn
	c      *Conn
	polled bool   // set before the poller reads
	feed   []byte // the poller's bytes not yet taken
}

func (t *tlsIO) Read(b []byte) (int, error) {
	if !t.polled {
		return t.Conn.Read(b)
	}
	if len(t.feed) == 0 {
		return 0, errWouldBlock
	}
	n := copy(b, t.feed)
	t.feed = t.feed[n:]
	return n, nil
}

// Write is crypto/tls writing records, one call at a time.
func (t *tlsIO) Write(b []byte) (int, error) {
	if t.c.rc == nil {
		return t.Conn.Write(b) // the handshake, or a conn without a descriptor
	}
	if err := t.c.writeRaw(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// errWouldBlock ends a read of a polled TLS connection: crypto/tls keeps
// its state on a temporary net.Error.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "evws: no more input" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }
