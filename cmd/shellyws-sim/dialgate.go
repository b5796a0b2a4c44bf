package main

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// maxHandshakes is how many websocket handshakes a fleet has in flight at
// once. A fleet in one process shares its CPU and one listener's SYN and
// accept queues at the server; 10,000 handshakes started together each
// hold their dial's state and goroutine at the same time (goroutine
// records stay behind in the runtime for the life of the process), and
// finish later than the same handshakes taken a few hundred at a time. The bare client of the black-box benchmark does the same.
const maxHandshakes = 256

// dialGate bounds the fleet's handshakes in flight. A slot is taken before
// the TCP dial and given back when the server's first bytes arrive (the
// HTTP response to the upgrade, or the TLS server hello) or when the
// connection is closed, whichever comes first.
type dialGate struct {
	slots chan struct{}
	// events counts dials started and connections closed: watchGC counts
	// the fleet's states again when it moved.
	events atomic.Uint64
}

func newDialGate(n int) *dialGate { return &dialGate{slots: make(chan struct{}, n)} }

// defaultDial is what the library dials with when given no dial function.
var defaultDial dialFunc = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext

// wrap returns dial (defaultDial if nil) taking a slot of g.
func (g *dialGate) wrap(dial dialFunc) dialFunc {
	if dial == nil {
		dial = defaultDial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		g.events.Add(1)
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			<-g.slots
			return nil, err
		}
		return &gatedConn{Conn: c, g: g}, nil
	}
}

// gatedConn gives its slot back on its first read or on Close.
type gatedConn struct {
	net.Conn
	done atomic.Bool
	g    *dialGate
}

func (c *gatedConn) release() {
	if !c.done.Load() && c.done.CompareAndSwap(false, true) {
		<-c.g.slots
	}
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.release()
	return n, err
}

// SyscallConn gives the library the socket beneath, so that its poller
// reads the connection instead of a goroutine per device. Reading the
// descriptor directly bypasses Read: the slot is given back by the
// handshake's reads, which go through Read, or by Close.
func (c *gatedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (c *gatedConn) Close() error {
	c.release()
	c.g.events.Add(1)
	return c.Conn.Close()
}
