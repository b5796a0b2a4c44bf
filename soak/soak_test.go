package soak

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

var (
	soakDuration = flag.Duration("soak.duration", 45*time.Second, "how long faults are injected (the long run is 10m)")
	soakSeed     = flag.Uint64("soak.seed", 0, "seed of the fault schedule; 0 picks one (it is printed)")
	soakDevices  = flag.Int("soak.devices", 500, "how many simulated devices run")
)

// The devices' settings: fast enough that every fault is seen and recovered
// from many times within a minute.
const (
	backoffInitial = 10 * time.Millisecond
	backoffCap     = time.Second
	pingInterval   = time.Second
	pingTimeout    = time.Second
	writeTimeout   = time.Second
	dialTimeout    = 2 * time.Second
	readLimit      = 64 << 10
	queueBound     = 25 // WithQueueSize's default, the firmware's queue length
)

// Bounds of the checks at the end of the run.
const (
	// reconnectMargin is added to the backoff cap (with its +50% jitter)
	// and the dial timeout: the time every device has to be connected
	// again once the faults stop, on a loaded 2-core machine under -race.
	reconnectMargin = 5 * time.Second
	// waitBound bounds every other wait of the final checks.
	waitBound = 30 * time.Second
	// goroutineSlack and heapSlack are how far above their baseline
	// goroutines and the live heap may stay once everything is stopped.
	goroutineSlack = 3
	heapSlack      = 8 << 20
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// errorCounter is a slog handler that counts error records and handler panics.
type errorCounter struct {
	errors, panics atomic.Int64
}

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(_ context.Context, r slog.Record) error {
	h.errors.Add(1)
	if strings.Contains(r.Message, "panic") {
		h.panics.Add(1)
	}
	return nil
}
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorCounter) WithGroup(string) slog.Handler      { return h }

// memSample is the process after a full collection.
type memSample struct {
	goroutines int
	heap       uint64
}

func sampleMem() memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestSoak runs the devices against the fault server for -soak.duration,
// then stops the faults and checks the contract; see the package doc.
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	n := *soakDevices
	t.Logf("soak: seed %d (replay with -soak.seed=%d), %d devices, %v of faults", seed, seed, n, *soakDuration)

	base := sampleMem()
	srv, err := newFaultServer(faultConfig{
		seed:         seed,
		minLife:      200 * time.Millisecond,
		maxLife:      4 * time.Second,
		minRequest:   50 * time.Millisecond,
		maxRequest:   500 * time.Millisecond,
		stallHold:    pingInterval + pingTimeout + 5*time.Second, // the margin: a loaded 2-core machine under -race
		oversized:    2 * readLimit,
		restartEvery: 10 * time.Second,
		answerWait:   5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	serverClosed := false
	defer func() {
		if !serverClosed {
			srv.Close()
		}
	}()

	var (
		causesMu sync.Mutex
		causes   = make(map[string]int) // lost connections by ConnError.Op
	)
	logs := &errorCounter{}
	logger := slog.New(logs)
	devices := make([]*device.Device, n)
	for i := range n {
		cfg := shellyws.DefaultConfig()
		cfg.Enable = true
		url := srv.URL()
		cfg.Server = &url
		d, err := device.New(withModel(device.Options{
			ID:          device.DeriveID("shellyplus1pm-50a000000000", i),
			Store:       shellyws.NewMemoryStore(cfg),
			Logger:      logger,
			RebootDelay: 5 * time.Millisecond,
			Extra: []shellyws.Option{
				shellyws.WithBackoff(shellyws.ExponentialBackoff(backoffInitial, backoffCap)),
				// The server's 1008, 1013, 429 and 503 ask for a longer
				// back-off; scaled down like the normal one, within its
				// bound, so reconnectBound still holds.
				shellyws.WithServerBackoff(func(time.Duration) time.Duration { return backoffCap }),
				shellyws.WithPing(pingInterval, pingTimeout),
				shellyws.WithWriteTimeout(writeTimeout),
				shellyws.WithDialTimeout(dialTimeout),
				shellyws.WithReadLimit(readLimit),
				shellyws.WithQueueSize(queueBound),
				shellyws.WithOnDisconnect(func(err error) {
					op := "other"
					var ce *shellyws.ConnError
					if errors.As(err, &ce) {
						op = ce.Op
					}
					causesMu.Lock()
					causes[op]++
					causesMu.Unlock()
				}),
			},
		}))
		if err != nil {
			t.Fatal(err)
		}
		devices[i] = d
	}
	byID := make(map[string]*device.Device, n)
	for _, d := range devices {
		byID[d.ID()] = d
	}
	srv.disconnects = func(id string) uint64 {
		if d := byID[id]; d != nil {
			return d.Component().Stats().Disconnects
		}
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running sync.WaitGroup
	for _, d := range devices {
		running.Add(1)
		go func() {
			defer running.Done()
			if err := d.Run(ctx); err != nil {
				t.Errorf("device %s: Run: %v", d.ID(), err)
			}
		}()
	}
	stopDevices := func() {
		cancel()
		done := make(chan struct{})
		go func() { running.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitBound):
			t.Fatalf("devices did not stop within %v", waitBound)
		}
	}

	// Local changes: bursts of switch toggles on random devices, some
	// longer than the queue, so queues fill while devices are away.
	toggles := make([]atomic.Int64, n)
	var maxQueued atomic.Int64
	stopDrivers := make(chan struct{})
	var drivers sync.WaitGroup
	drivers.Add(2)
	go func() {
		defer drivers.Done()
		rng := rand.New(rand.NewPCG(seed, 0x7066))
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopDrivers:
				return
			case <-tick.C:
			}
			i := rng.IntN(n)
			burst := 1 + rng.IntN(2*queueBound)
			for range burst {
				devices[i].Toggle("button")
			}
			toggles[i].Add(int64(burst))
		}
	}()
	go func() {
		defer drivers.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopDrivers:
				return
			case <-tick.C:
			}
			for _, d := range devices {
				if q := int64(d.Component().Stats().Queued); q > maxQueued.Load() {
					maxQueued.Store(q)
				}
			}
		}
	}()

	// The fault phase, sampling memory every cycle of 5 s.
	var cycles []memSample
	end := time.NewTimer(*soakDuration)
	cycle := time.NewTicker(5 * time.Second)
faults:
	for {
		select {
		case <-end.C:
			break faults
		case <-cycle.C:
			cycles = append(cycles, sampleMem())
		}
	}
	cycle.Stop()
	close(stopDrivers)
	drivers.Wait()

	// Faults stop: every device must be connected again within the
	// backoff cap (+50% jitter) plus the dial timeout and a margin.
	srv.Calm()
	calmAt := time.Now()
	reconnectBound := backoffCap*3/2 + dialTimeout + reconnectMargin
	reconnected := make([]time.Duration, n)
	pending := make(map[int]bool, n)
	for i := range n {
		pending[i] = true
	}
	for len(pending) > 0 && time.Since(calmAt) < reconnectBound {
		live := srv.Live()
		for i := range pending {
			d := devices[i]
			if d.Component().State() == shellyws.StateConnected && live[d.ID()] != nil {
				reconnected[i] = time.Since(calmAt)
				delete(pending, i)
			}
		}
		time.Sleep(10 * time.Millisecond) // polling 500 devices; every wait is bounded by reconnectBound
	}
	var slowestReconnect time.Duration
	for _, d := range reconnected {
		slowestReconnect = max(slowestReconnect, d)
	}
	if len(pending) > 0 {
		var ids []string
		for i := range pending {
			ids = append(ids, fmt.Sprintf("%s (%v, %v)", devices[i].ID(), devices[i].Component().State(), devices[i].Component().LastError()))
		}
		sort.Strings(ids)
		t.Errorf("%d devices not connected %v after the faults stopped, e.g. %.5v", len(pending), reconnectBound, ids)
	}

	// Every device answers a request on its new connection. A device may
	// still be between connections (one the server gave up on at calm),
	// so the request is retried on its latest connection.
	var answerFailures atomic.Int64
	var asking sync.WaitGroup
	sem := make(chan struct{}, 64)
	askDeadline := time.Now().Add(waitBound)
	for _, d := range devices {
		asking.Add(1)
		sem <- struct{}{}
		go func() {
			defer asking.Done()
			defer func() { <-sem }()
			var last string
			for time.Now().Before(askDeadline) {
				c := srv.Live()[d.ID()]
				if c == nil {
					last = "no connection"
					time.Sleep(10 * time.Millisecond) // bounded by askDeadline
					continue
				}
				answer := make(chan json.RawMessage, 1)
				if err := c.send("Shelly.GetDeviceInfo", "", answer); err != nil {
					last = err.Error()
					continue
				}
				select {
				case a := <-answer:
					var resp struct {
						Result device.DeviceInfo `json:"result"`
					}
					if json.Unmarshal(a, &resp) != nil || resp.Result.ID != d.ID() {
						t.Errorf("device %s answered %s", d.ID(), a)
						answerFailures.Add(1)
					}
					return
				case <-c.done:
					last = "connection lost"
				case <-time.After(time.Until(askDeadline)):
					last = "no answer"
				}
			}
			t.Errorf("device %s did not answer within %v: %s", d.ID(), waitBound, last)
			answerFailures.Add(1)
		}()
	}
	asking.Wait()

	// Queues drain once connected; what they held reaches the server.
	drainDeadline := time.Now().Add(waitBound)
	for {
		queued := 0
		for _, d := range devices {
			queued += d.Component().Stats().Queued
		}
		if queued == 0 {
			break
		}
		if time.Now().After(drainDeadline) {
			t.Errorf("%d notifications still queued %v after the faults stopped", queued, waitBound)
			break
		}
		time.Sleep(10 * time.Millisecond) // bounded by drainDeadline
	}

	var totals shellyws.Stats
	stats := make([]shellyws.Stats, n)
	for i, d := range devices {
		st := d.Component().Stats()
		stats[i] = st
		totals.Connects += st.Connects
		totals.Disconnects += st.Disconnects
		totals.DialFailures += st.DialFailures
		totals.Dropped += st.Dropped
	}
	stopDevices()
	srv.Close()
	serverClosed = true

	// Goroutines and heap return to their baseline.
	devices, byID = nil, nil
	var after memSample
	backDeadline := time.Now().Add(waitBound)
	for {
		runtime.GC() // a second cycle empties the sync.Pools
		after = sampleMem()
		if after.goroutines <= base.goroutines+goroutineSlack && after.heap <= base.heap+heapSlack {
			break
		}
		if time.Now().After(backDeadline) {
			t.Errorf("not back to baseline after %v: goroutines %d (baseline %d), heap %.1f MiB (baseline %.1f MiB)",
				waitBound, after.goroutines, base.goroutines, mib(after.heap), mib(base.heap))
			break
		}
		time.Sleep(50 * time.Millisecond) // bounded by backDeadline
	}

	// The accounts.
	st := &srv.stats
	var sumToggles, sumReceived int64
	st.mu.Lock()
	for i := range n {
		id := device.DeriveID("shellyplus1pm-50a000000000", i)
		tg, rc := toggles[i].Load(), int64(st.received[id])
		sumToggles += tg
		sumReceived += rc
		// Every delta published was delivered, dropped (and counted) or
		// in flight on a connection that died; a delta whose write failed
		// is sent again on the next connection, so one per connection may
		// arrive twice.
		if rc+int64(stats[i].Dropped) > tg+int64(stats[i].Connects) {
			t.Errorf("device %s: %d deltas received and %d dropped, but only %d published", id, rc, stats[i].Dropped, tg)
		}
	}
	st.mu.Unlock()
	sent, answered, lost := st.sent.Load(), st.answered.Load(), st.lost.Load()
	causesMu.Lock()
	causeList := fmt.Sprint(causes)
	causesMu.Unlock()
	var growth string
	if k := len(cycles) / 3; k > 0 {
		first, last := maxSample(cycles[:k]), maxSample(cycles[len(cycles)-k:])
		growth = fmt.Sprintf("cycle peaks: first third %d goroutines / %.1f MiB, last third %d / %.1f MiB",
			first.goroutines, mib(first.heap), last.goroutines, mib(last.heap))
		if last.heap > first.heap*3/2+16<<20 {
			t.Errorf("heap grows across cycles: %s", growth)
		}
		if last.goroutines > first.goroutines*3/2+100 {
			t.Errorf("goroutines grow across cycles: %s", growth)
		}
	}

	t.Logf("soak summary: seed=%d devices=%d duration=%v | connections=%d handshakes=%d first-frames=%d bad-first-frames=%d died-before-first-frame=%d | faults %s | restarts=%d oversized-closed-1009=%d stalls-undetected=%d stalls-on-stale-connections=%d | requests sent=%d answered=%d lost-with-connection=%d lost-on-graceful-close=%d unexpected-frames=%d early-requests=%d | device connects=%d disconnects=%d dial-failures=%d causes=%s | notifications published=%d received=%d dropped=%d lost-in-flight=%d max-queued=%d/%d | reconnect slowest=%v bound=%v | goroutines before=%d after=%d heap before=%.1fMiB after=%.1fMiB | %s | error-logs=%d panics=%d",
		seed, n, *soakDuration,
		st.connections.Load(), st.handshakes.Load(), st.firstFrames.Load(), st.firstFrameBad.Load(), st.noFirstFrame.Load(),
		st.faultSummary(), st.restarts.Load(), st.oversized1009.Load(), st.stallsUndetected.Load(), st.stallsStale.Load(),
		sent, answered, lost, st.lostGraceful.Load(), st.unexpected.Load(), st.earlyRequests.Load(),
		totals.Connects, totals.Disconnects, totals.DialFailures, causeList,
		sumToggles, sumReceived, totals.Dropped, sumToggles-sumReceived-int64(totals.Dropped), maxQueued.Load(), queueBound,
		slowestReconnect.Round(time.Millisecond), reconnectBound,
		base.goroutines, after.goroutines, mib(base.heap), mib(after.heap), growth,
		logs.errors.Load(), logs.panics.Load())

	if bad := st.firstFrameBad.Load(); bad != 0 {
		t.Errorf("%d connections did not start with NotifyFullStatus (or sent it twice)", bad)
	}
	if sent != answered+lost {
		t.Errorf("requests: %d sent, %d answered, %d lost with their connection: %d unaccounted", sent, answered, lost, sent-answered-lost)
	}
	if g := st.lostGraceful.Load(); g != 0 {
		t.Errorf("%d requests unanswered when the server closed gracefully %v after its last request", g, 5*time.Second)
	}
	if u := st.unexpected.Load(); u != 0 {
		t.Errorf("%d unexpected frames: answers to requests without a valid id, second answers or garbage, e.g. %q", u, st.samples)
	}
	if answered == 0 || st.connections.Load() < int64(n) {
		t.Errorf("the soak did too little: %d connections, %d answers", st.connections.Load(), answered)
	}
	if answerFailures.Load() != 0 {
		t.Errorf("%d devices did not answer after the faults stopped", answerFailures.Load())
	}
	if q := maxQueued.Load(); q > queueBound {
		t.Errorf("a queue held %d notifications, bound %d", q, queueBound)
	}
	if totals.Dropped == 0 {
		t.Error("no notification was dropped: the soak never filled a queue")
	}
	if sumReceived+int64(totals.Dropped) > sumToggles+int64(totals.Connects) {
		t.Errorf("more notifications accounted (%d received + %d dropped) than published (%d)", sumReceived, totals.Dropped, sumToggles)
	}
	if u := st.stallsUndetected.Load(); u != 0 {
		t.Errorf("%d stalled connections were not dropped by the device within %v", u, pingInterval+pingTimeout+3*time.Second)
	}
	if p := logs.panics.Load(); p != 0 {
		t.Errorf("%d handler panics", p)
	}
	if st.faultSummary() == "0:" {
		t.Error("no fault was injected")
	}
}

func maxSample(s []memSample) memSample {
	var m memSample
	for _, x := range s {
		m.goroutines = max(m.goroutines, x.goroutines)
		m.heap = max(m.heap, x.heap)
	}
	return m
}

// withModel gives o the default model, a Plus 1PM, unless it names one.
func withModel(o device.Options) device.Options {
	if o.Model == nil {
		p, err := profile.Builtin(profile.Default)
		if err != nil {
			panic(err)
		}
		o.Model = p
	}
	return o
}
