package shellyws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stretchr/testify/assert"
)

func TestPingDelay(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		iv, after, want time.Duration
	}{
		// 30 s: a grain of 100 ms, so at most 100 ms later, on the grain.
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 1 * time.Millisecond, 30*time.Second + 99*time.Millisecond},
		{30 * time.Second, 99 * time.Millisecond, 30*time.Second + 1*time.Millisecond},
		{30 * time.Second, 100 * time.Millisecond, 30 * time.Second},
		// 2.56 s: a grain of 10 ms.
		{2560 * time.Millisecond, 3 * time.Millisecond, 2560*time.Millisecond + 7*time.Millisecond},
		// Test intervals stay as given to within 1/256 (-1: checked below).
		{50 * time.Millisecond, 100 * time.Microsecond, -1},
		{255 * time.Nanosecond, 7, 255 * time.Nanosecond},
	} {
		now := base.Add(tc.after)
		got := pingDelay(tc.iv, now)
		if tc.want >= 0 {
			assert.Equal(t, tc.want, got, "interval %v at +%v", tc.iv, tc.after)
		}
		if g := int64(min(tc.iv/256, maxPingGrain)); g > 0 {
			assert.Zero(t, now.Add(got).UnixNano()%g, "interval %v at +%v: on the grain", tc.iv, tc.after)
		}
		assert.GreaterOrEqual(t, got, tc.iv)
		assert.LessOrEqual(t, got, tc.iv+min(tc.iv/256, maxPingGrain))
	}
}

// A keepalive round that finds the server recently heard re-arms the timer
// and allocates nothing.
func TestKeepaliveQuietRoundAllocatesNothing(t *testing.T) {
	c, err := New("shellyplus1pm-c049ef8cf4e0", WithPing(time.Hour, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{c: c, live: true}
	p.heard = &p.heardOwn
	p.ping = time.AfterFunc(time.Hour, func() {})
	defer p.ping.Stop()
	allocs := testing.AllocsPerRun(100, func() {
		p.heard.Store(mono())
		p.wg.Add(1) // as the timer's run is counted
		p.pingOnce()
		if p.ping.Stop() {
			p.wg.Done()
		}
	})
	assert.Zero(t, allocs)
	p.wg.Wait()
}

// BenchmarkKeepaliveRound measures one keepalive round of the device over
// loopback, allocations included (the server's pong handling runs in the
// same process and is counted too): "quiet" finds the server recently
// heard, "ping" pings and waits for the pong, "ping-with-context" is the
// former round, a context.WithTimeout per ping.
func BenchmarkKeepaliveRound(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	conn, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New("shellyplus1pm-c049ef8cf4e0", WithPing(time.Hour, time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	p := newPeer(context.Background(), c, conn, nil, c.opts.logger, c.queue)
	p.live = true
	p.ping = time.AfterFunc(time.Hour, func() {})
	p.wg.Add(1)
	go p.readLoop() // reads the pongs
	round := func() {
		p.wg.Add(1)
		p.pingOnce()
		if p.ping.Stop() {
			p.wg.Done()
		}
	}
	b.Run("quiet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.heard.Store(mono())
			round()
		}
	})
	b.Run("ping", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.heard.Store(mono() - int64(2*time.Hour)) // nothing heard for two intervals
			round()
		}
	})
	b.Run("ping-with-context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := conn.Ping(ctx); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
	p.mu.Lock()
	p.live = false
	p.mu.Unlock()
	p.finish(0, "")
}
