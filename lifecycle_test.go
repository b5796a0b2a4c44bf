package shellyws_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
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

// restartingDevice runs a device whose first NotifyFullStatus is built
// while stop runs: the restart context has ended before the connection is
// served, the case the restart slot handles at once.
func restartingDevice(t *testing.T, srv *shellywstest.Server, stop func(*shellyws.Component)) {
	t.Helper()
	var dev atomic.Pointer[shellyws.Component]
	var builds atomic.Int32
	opts := append(fastOptions(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))),
		shellyws.WithBootTime(time.Millisecond),
		shellyws.WithFullStatus(func(context.Context) (map[string]any, error) {
			if builds.Add(1) == 1 {
				stop(dev.Load())
			}
			return map[string]any{}, nil
		}))
	c, err := shellyws.New(testDeviceID, opts...)
	require.NoError(t, err)
	dev.Store(c)
	runDevice(t, c)
}

// A Restart while the connection opens closes it with 1012 once its
// NotifyFullStatus is out, and the device dials again at once.
func TestRestartWhileOpeningClosesWith1012(t *testing.T) {
	srv := shellywstest.NewServer(t)
	restartingDevice(t, srv, (*shellyws.Component).Restart)
	ctx := testCtx(t)
	first := acceptConnected(t, ctx, srv)
	select {
	case <-first.Done():
	case <-ctx.Done():
		t.Fatal("the connection opened during a Restart stayed up")
	}
	assert.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(first.Err()))
	second := acceptConnected(t, ctx, srv)
	var st shellyws.Status
	second.CallT(t, "Ws.GetStatus", nil, &st)
	assert.True(t, st.Connected)
}

// A Reboot right after a Restart, both while the connection opens, drops
// it without a close frame, as a power cycle does.
func TestRebootAfterRestartWhileOpeningDrops(t *testing.T) {
	srv := shellywstest.NewServer(t)
	restartingDevice(t, srv, func(c *shellyws.Component) {
		c.Restart()
		c.Reboot()
	})
	ctx := testCtx(t)
	first := acceptConnected(t, ctx, srv)
	select {
	case <-first.Done():
	case <-ctx.Done():
		t.Fatal("the connection opened during a Reboot stayed up")
	}
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(first.Err()), "dropped: %v", first.Err())
	acceptConnected(t, ctx, srv) // after the boot
}
