//go:build linux

package blackbox

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pinger pings one connection of the server every interval, as Fleet
// Manager and Home Assistant's remote endpoint do with a timer per
// connection. The first ping comes at a random point of the first interval,
// so that a fleet that connected within seconds is not pinged in one burst.
// At most one ping per connection is in flight: the next is armed only
// after the pong, or after a missed pong, which drops the connection (a
// pong later than the interval is as good as none).
type pinger struct {
	s *server
	c *websocket.Conn

	mu      sync.Mutex
	every   time.Duration
	gen     int // bumped by each schedule; a timer of an older one does nothing
	t       *time.Timer
	phase   time.Duration // of the first ping after the last schedule
	stopped bool
}

// setPing makes the server ping every connection it reads every d, from
// now on (each from a random phase), or stop pinging with d = 0.
func (s *server) setPing(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pingEvery = d
	for p := range s.pingers {
		p.schedule(d)
	}
}

func (s *server) startPinger(c *websocket.Conn) *pinger {
	p := &pinger{s: s, c: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pingers[p] = struct{}{}
	p.schedule(s.pingEvery)
	return p
}

// stopPinger ends p's pings; one in flight ends with the connection.
func (s *server) stopPinger(p *pinger) {
	s.mu.Lock()
	delete(s.pingers, p)
	s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.t != nil {
		p.t.Stop()
	}
}

// schedule arms the first ping at a random point of the next interval d.
func (p *pinger) schedule(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.every = d
	p.gen++
	if p.t != nil {
		p.t.Stop()
		p.t = nil
	}
	if d > 0 {
		p.phase = rand.N(d) + 1
		p.arm(p.phase)
	}
}

// arm fires the next ping after d; p.mu is held.
func (p *pinger) arm(d time.Duration) {
	gen := p.gen
	p.t = time.AfterFunc(d, func() { p.fire(gen) })
}

func (p *pinger) fire(gen int) {
	p.mu.Lock()
	if p.stopped || gen != p.gen {
		p.mu.Unlock()
		return
	}
	every := p.every
	p.s.pinging.Add(1)
	p.mu.Unlock()
	defer p.s.pinging.Done()

	p.s.pings.sent.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), every)
	err := p.c.Ping(ctx)
	cancel()
	switch {
	case err == nil:
		p.s.pings.answered.Add(1)
	case errors.Is(err, context.DeadlineExceeded):
		p.s.pings.missed.Add(1)
		p.c.CloseNow()
		return
	default:
		return // the connection is gone
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped && gen == p.gen {
		p.arm(every)
	}
}

// pingCounts is a snapshot of the server's ping counters.
type pingCounts struct{ sent, answered, missed int64 }

func (s *server) pingCounts() pingCounts {
	return pingCounts{s.pings.sent.Load(), s.pings.answered.Load(), s.pings.missed.Load()}
}

func (a pingCounts) minus(b pingCounts) pingCounts {
	return pingCounts{a.sent - b.sent, a.answered - b.answered, a.missed - b.missed}
}

func (a pingCounts) plus(b pingCounts) pingCounts {
	return pingCounts{a.sent + b.sent, a.answered + b.answered, a.missed + b.missed}
}

// phases are the first-ping phases of the connections now pinged.
func (s *server) phases() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for p := range s.pingers {
		p.mu.Lock()
		if p.every > 0 {
			out = append(out, p.phase)
		}
		p.mu.Unlock()
	}
	return out
}

// TestServerPings checks the pinging server: the first pings of
// connections made together are spread over the interval, devices that
// read answer them, a device that never answers is dropped, a silent
// server disarms every connection and pings again when asked, and a
// restart leaves no connection pinged.
func TestServerPings(t *testing.T) {
	srv, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	const every = 100 * time.Millisecond
	srv.setPing(every)
	const n = 20
	reached := srv.expect(n+1, true)
	ctx := t.Context()
	var readers sync.WaitGroup
	defer readers.Wait()
	dial := func(src string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, srv.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		full := `{"src":"` + src + `","method":"NotifyFullStatus","params":{}}`
		if err := c.Write(ctx, websocket.MessageText, []byte(full)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range n {
		c := dial("reader-" + string(rune('a'+i)))
		defer c.CloseNow()
		readers.Go(func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		})
	}
	deaf := dial("deaf") // never reads, so never answers a ping
	defer deaf.CloseNow()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("devices did not connect")
	}

	// The deaf connection may be gone already on a slow machine: its first
	// ping can come, and time out, before the last reader is counted. The
	// wait below checks that it was pinged and dropped.
	phases := srv.phases()
	if len(phases) < n || len(phases) > n+1 {
		t.Fatalf("%d connections pinged, want %d (%d with the deaf one)", len(phases), n, n+1)
	}
	lo, hi := slices.Min(phases), slices.Max(phases)
	if lo <= 0 || hi > every || hi-lo < every/4 {
		t.Errorf("first pings at %v … %v of a %v interval: not spread over it", lo, hi, every)
	}

	waitUntil(t, "pings answered and the deaf device dropped", func() bool {
		c := srv.pingCounts()
		return c.answered >= 2*n && c.missed >= 1 && srv.pinged() == n
	})

	srv.setPing(0)
	if p := srv.phases(); len(p) != 0 {
		t.Errorf("silent server: %d connections still armed", len(p))
	}
	before := srv.pingCounts()
	srv.setPing(every)
	waitUntil(t, "pings again after silence", func() bool {
		return srv.pingCounts().answered-before.answered >= n
	})

	if _, err := srv.restart(0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "no connection pinged after the restart", func() bool { return srv.pinged() == 0 })
}

// pinged is how many connections the server now pings (or would).
func (s *server) pinged() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pingers)
}

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval of the condition
	}
}
