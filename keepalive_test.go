package shellyws_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// pingServer is a loopback websocket server that reads every frame, records
// the pings the device sends, and pings the device itself every every
// (never when every is 0).
type pingServer struct {
	every time.Duration

	mu          sync.Mutex
	devicePings []time.Time
	serverPings int
	got         chan struct{} // a device ping or a server ping happened
}

func newPingServer(t *testing.T, every time.Duration) (*pingServer, string) {
	t.Helper()
	ps := &pingServer{every: every, got: make(chan struct{}, 1)}
	stop := make(chan struct{})
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols: []string{shellyws.Subprotocol},
			OnPingReceived: func(context.Context, []byte) bool {
				ps.mu.Lock()
				ps.devicePings = append(ps.devicePings, time.Now())
				ps.mu.Unlock()
				ps.signal()
				return true
			},
		})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var reader sync.WaitGroup
		reader.Go(func() {
			defer cancel()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		})
		defer reader.Wait()
		if every <= 0 {
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-tick.C:
				pctx, pcancel := context.WithTimeout(ctx, every)
				err := c.Ping(pctx)
				pcancel()
				if err == nil {
					ps.mu.Lock()
					ps.serverPings++
					ps.mu.Unlock()
					ps.signal()
				}
			}
		}
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
		handlers.Wait()
	})
	return ps, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func (ps *pingServer) signal() {
	select {
	case ps.got <- struct{}{}:
	default:
	}
}

func (ps *pingServer) counts() (device []time.Time, server int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]time.Time(nil), ps.devicePings...), ps.serverPings
}

// waitUntil waits for cond, rechecked whenever the server pings or is
// pinged, bounded by waitTimeout.
func (ps *pingServer) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-ps.got:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Keepalive, protocol section 1 as revised: a device whose server pings
// sends no pings of its own; anything from the server proves the
// connection alive.
func TestNoDevicePingsWhileTheServerPings(t *testing.T) {
	const iv = 100 * time.Millisecond
	ps, url := newPingServer(t, iv/2)
	startDevice(t, enabledConfig(url), shellyws.WithPing(iv, iv/2))
	ps.waitUntil(t, "eight server pings (four intervals)", func() bool {
		_, n := ps.counts()
		return n >= 8
	})
	device, _ := ps.counts()
	assert.Empty(t, device, "the device pinged a server that pings it every half interval")
}

// Against a silent server the device pings once per interval, counted from
// the last thing it heard (the previous pong).
func TestDevicePingsOncePerIntervalWhenTheServerIsSilent(t *testing.T) {
	const iv = 100 * time.Millisecond
	ps, url := newPingServer(t, 0)
	startDevice(t, enabledConfig(url), shellyws.WithPing(iv, iv/2))
	ps.waitUntil(t, "five device pings", func() bool {
		d, _ := ps.counts()
		return len(d) >= 5
	})
	device, _ := ps.counts()
	for i := 1; i < len(device); i++ {
		gap := device[i].Sub(device[i-1])
		assert.GreaterOrEqual(t, gap, iv-5*time.Millisecond, "ping %d: not more than once per interval", i)
		assert.Less(t, gap, 2*iv, "ping %d: not less than once per interval", i)
	}
}

// blackholeProxy forwards loopback TCP to backend until cut, then silently
// drops everything in both directions, as a half-open connection does: no
// FIN, no RST, no answer.
type blackholeProxy struct {
	addr string
	cut  atomic.Bool
}

func newBlackholeProxy(t *testing.T, backend string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	bp := &blackholeProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	closed := false
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 && !bp.cut.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			if closed {
				// Accepted while the cleanup closed the others: a pipe
				// on it would read forever.
				mu.Unlock()
				c.Close()
				b.Close()
				return
			}
			conns = append(conns, c, b)
			mu.Unlock()
			wg.Go(func() { pipe(b, c) })
			wg.Go(func() { pipe(c, b) })
		}
	})
	return bp
}

// A half-open connection (the server neither reads nor answers any more,
// and nothing closes) is dropped within two keepalive intervals of the
// last thing the device heard, even when the server had been pinging and
// the device so had sent no pings of its own.
func TestHalfOpenConnectionDroppedWithinTwoIntervals(t *testing.T) {
	const iv = 200 * time.Millisecond
	ps, url := newPingServer(t, iv/2)
	backend := strings.TrimPrefix(url, "ws://")
	proxy := newBlackholeProxy(t, backend)
	var dropped atomic.Pointer[time.Time]
	var cause atomic.Value
	startDevice(t, enabledConfig("ws://"+proxy.addr), shellyws.WithPing(iv, iv/2),
		shellyws.WithOnDisconnect(func(err error) {
			now := time.Now()
			if dropped.CompareAndSwap(nil, &now) {
				cause.Store(err)
			}
		}))
	ps.waitUntil(t, "four server pings", func() bool {
		_, n := ps.counts()
		return n >= 4
	})
	proxy.cut.Store(true)
	cutAt := time.Now()
	require.Eventually(t, func() bool { return dropped.Load() != nil }, waitTimeout, time.Millisecond)
	took := dropped.Load().Sub(cutAt)
	assert.LessOrEqual(t, took, 2*iv, "dropped %v after the connection went half-open", took)
	var cerr *shellyws.ConnError
	require.ErrorAs(t, cause.Load().(error), &cerr)
	assert.Equal(t, "ping", cerr.Op)
}
