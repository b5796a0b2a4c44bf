package shellyws_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// silentServer accepts TCP connections on loopback and never answers the
// handshake; it returns its ws:// URL.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// runAndCancelWhileDialing starts Run and cancels it as soon as the
// component is connecting, then waits for Run to return.
func runAndCancelWhileDialing(t *testing.T, c *shellyws.Component) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer wcancel()
	_, err := c.WaitForStateChange(wctx, shellyws.StateDisconnected)
	require.NoError(t, err)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
}

// Run cancelled while it dials must return only after every goroutine it
// started has ended: with the default dialer the race detector saw the
// dial's wait group used unordered, and a WithDialContext hook was called
// after Run had returned.
func TestRunCancelledWhileDialingCallsNoHookAfterReturn(t *testing.T) {
	url := silentServer(t)
	var late atomic.Int64
	for range 100 {
		var returned atomic.Bool
		c, err := shellyws.New(testDeviceID,
			shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(url))),
			shellyws.WithDialContext(func(ctx context.Context, network, addr string) (net.Conn, error) {
				if returned.Load() {
					late.Add(1)
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}))
		require.NoError(t, err)
		runAndCancelWhileDialing(t, c)
		returned.Store(true)
	}
	require.Never(t, func() bool { return late.Load() > 0 }, 50*time.Millisecond, time.Millisecond,
		"the dial hook was called after Run returned")
}

func TestRunCancelledWhileDialingDefaultDialer(t *testing.T) {
	url := silentServer(t)
	for range 50 {
		c, err := shellyws.New(testDeviceID,
			shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(url))))
		require.NoError(t, err)
		runAndCancelWhileDialing(t, c)
	}
}

// Restart abandons a dial under way: a device stuck in a handshake the
// server never answers moves to its new server at once, not after the
// dial timeout.
func TestRestartAbandonsADialUnderWay(t *testing.T) {
	silent := silentServer(t)
	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(silent), shellyws.WithDialTimeout(time.Hour))
	ctx := testCtx(t)
	_, err := dev.WaitForStateChange(ctx, shellyws.StateDisconnected)
	require.NoError(t, err)
	_, err = dev.SetConfig(enabledConfig(srv.URL()))
	require.NoError(t, err)
	dev.Restart()
	acceptConnected(t, ctx, srv)
	assert.Zero(t, dev.Stats().DialFailures, "an abandoned dial is not a failure")
}
