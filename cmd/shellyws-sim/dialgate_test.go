package main

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDialGate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()

	dial := newDialGate(2).wrap(nil)
	ctx := t.Context()
	a, err := dial(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer a.Close()
	b, err := dial(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer b.Close()

	// Both slots are taken: a third dial waits until its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = dial(short, "tcp", ln.Addr().String())
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)

	// The server's first bytes on a give its slot back.
	srvA := <-accepted
	_, err = srvA.Write([]byte("HTTP/1.1 101"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	_, err = a.Read(buf)
	require.NoError(t, err)
	c, err := dial(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()

	// Closing b gives its slot back (once, however often it is closed).
	require.NoError(t, b.Close())
	_ = b.Close()
	d, err := dial(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer d.Close()
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	_, err = dial(short2, "tcp", ln.Addr().String())
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)

	// A failed dial gives its slot back at once.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := dead.Addr().String()
	dead.Close()
	g := newDialGate(1)
	dial1 := g.wrap(nil)
	for range 3 {
		_, err = dial1(ctx, "tcp", deadAddr)
		require.Error(t, err)
	}
	require.Len(t, g.slots, 0)
}

// A gated conn offers the socket beneath it, so the library's poller reads
// the fleet's connections rather than a goroutine per device (evws reads a
// conn without SyscallConn on a goroutine of its own).
func TestGatedConnOffersItsSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := newDialGate(1).wrap(nil)(t.Context(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	require.True(t, ok, "a gated conn is a syscall.Conn")
	rc, err := sc.SyscallConn()
	require.NoError(t, err)
	var fd uintptr
	require.NoError(t, rc.Control(func(f uintptr) { fd = f }))
	require.NotZero(t, fd)
}
