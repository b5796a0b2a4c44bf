//go:build linux

package blackbox

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var (
	flagN        = flag.Int("bb.n", 1000, "devices in the fleet (10000, 100000 for the issue's goals)")
	flagPairs    = flag.Int("bb.pairs", 15, "alternating simulator/bare pairs of round-trip runs")
	flagSeq      = flag.Int("bb.reqs", 5000, "requests per one-at-a-time run")
	flagPipe     = flag.Int("bb.pipereqs", 20000, "requests per 64-in-flight run")
	flagDown     = flag.Duration("bb.down", 0, "how long the restarted server stays down (refusing connections)")
	flagSamples  = flag.Int("bb.samples", 5, "RSS samples of an idle process")
	flagGap      = flag.Duration("bb.gap", time.Second, "time between RSS samples of the one-device processes")
	flagIdle     = flag.Duration("bb.idle", 31*time.Second, "idle window of the fleet for CPU and RSS samples; past the 30 s keepalive so that every device pings in it")
	flagSettle   = flag.Duration("bb.settle", 2*time.Second, "wait after all devices connected before sampling")
	flagEnv      = flag.String("bb.env", "", "extra environment of the simulator, space-separated, e.g. GOGC=50")
	flagLocal    = flag.String("bb.local-addr", "", "the simulator's -local-addr, e.g. 127.0.0.0/24 past ~28,000 devices")
	flagNoBareFl = flag.Bool("bb.nobarefleet", false, "skip the bare fleet's RSS")
	flagMetrics  = flag.String("bb.metrics", "", "the fleet simulator's -metrics address, e.g. 127.0.0.1:9090, to profile it during the run through /debug/pprof")
)

// config is one run's parameters.
type config struct {
	n, pairs, seq, pipe, samples int
	down, gap, settle, idle      time.Duration
	env                          []string
	localAddr, metrics           string
	bareFleet                    bool
}

func configFromFlags() config {
	return config{
		n: *flagN, pairs: *flagPairs, seq: *flagSeq, pipe: *flagPipe, samples: *flagSamples,
		down: *flagDown, gap: *flagGap, settle: *flagSettle, idle: *flagIdle, env: strings.Fields(*flagEnv),
		localAddr: *flagLocal, metrics: *flagMetrics, bareFleet: !*flagNoBareFl,
	}
}

// result is what one run measured.
type result struct {
	seqRatio, pipeRatio      []float64 // bare time / simulator time, per pair
	seqSim, seqBare          []time.Duration
	pipeSim, pipeBare        []time.Duration
	rss1, bareRSS1           []int // KiB
	rssN, bareRSSN           []int
	connect, bareConnect     time.Duration
	back                     time.Duration // from the drop until all sent NotifyFullStatus again
	busiest, handshakes      int
	idleCPU                  float64 // % of one core
	idleWindow               time.Duration
	perDevice, barePerDevice []float64 // KiB
}

func BenchmarkBlackbox(b *testing.B) {
	cfg := configFromFlags()
	var r *result
	for b.Loop() {
		var err error
		if r, err = run(b.Context(), cfg, b.TempDir(), b.Logf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(median(r.perDevice), "KiB/device")
	b.ReportMetric(median(r.seqRatio), "rt-x-of-bare")
	b.ReportMetric(median(r.pipeRatio), "rt64-x-of-bare")
	b.ReportMetric(r.connect.Seconds(), "s-connected")
	b.ReportMetric(r.back.Seconds(), "s-back")
	b.ReportMetric(100*float64(r.busiest)/float64(r.handshakes), "%-busiest-100ms")
	b.ReportMetric(r.idleCPU, "%-idle-cpu")
	report(func(format string, args ...any) { fmt.Printf(format+"\n", args...) }, cfg, r)
}

// TestSmoke runs every step with a handful of devices and checks that each
// completed; the figures mean nothing at this size.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the simulator")
	}
	cfg := config{n: 5, pairs: 1, seq: 20, pipe: 200, samples: 2, gap: 50 * time.Millisecond, idle: 100 * time.Millisecond, bareFleet: true}
	r, err := run(t.Context(), cfg, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	report(t.Logf, cfg, r)
	if len(r.seqRatio) != 1 || r.seqRatio[0] <= 0 || r.pipeRatio[0] <= 0 {
		t.Errorf("round trips: %v %v", r.seqRatio, r.pipeRatio)
	}
	if r.handshakes < cfg.n || r.busiest < 1 {
		t.Errorf("restart saw %d handshakes, busiest window %d; want ≥ %d", r.handshakes, r.busiest, cfg.n)
	}
	if len(r.rssN) != 2 || r.rssN[0] <= 0 || r.rss1[0] <= 0 || r.bareRSSN[0] <= 0 {
		t.Errorf("RSS samples: %v %v %v", r.rss1, r.rssN, r.bareRSSN)
	}
}

// waitFor waits for ch, or fails after limit with the child's output.
func waitFor(ctx context.Context, ch <-chan struct{}, limit time.Duration, c *child, what string) error {
	select {
	case <-ch:
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before %s; output:\n%s", c.name, what, c.out)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return fmt.Errorf("%s: no %s within %v; output:\n%s", c.name, what, limit, c.out)
	}
}

func awaitConn(ctx context.Context, ch <-chan *websocket.Conn, c *child) (*websocket.Conn, error) {
	select {
	case conn := <-ch:
		return conn, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited; output:\n%s", c.name, c.out)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s never connected; output:\n%s", c.name, c.out)
	}
}

// fleetLimit bounds the wait for a fleet to connect or come back.
func fleetLimit(n int) time.Duration { return 60*time.Second + time.Duration(n)*2*time.Millisecond }

func run(ctx context.Context, cfg config, dir string, logf func(string, ...any)) (*result, error) {
	r := &result{}
	srv, bin, err := serverAndSimulator(dir)
	if err != nil {
		return nil, err
	}
	defer srv.close()

	// RSS(1): one simulated device and one bare device, idle.
	sim1, err := startSimulator(bin, srv.URL(), "shellyplus1pm-00000c000000", 1, cfg.env)
	if err != nil {
		return nil, err
	}
	defer sim1.stop()
	bare1, err := startBare(srv.URL(), "bare1", 1)
	if err != nil {
		return nil, err
	}
	defer bare1.stop()
	if err := waitFor(ctx, srv.expect(2, true), fleetLimit(1), sim1, "one device each connected"); err != nil {
		return nil, err
	}
	time.Sleep(cfg.settle) // let the new processes settle before sampling
	if r.rss1, err = sampleRSS(sim1.pid(), cfg.samples, cfg.gap); err != nil {
		return nil, err
	}
	if r.bareRSS1, err = sampleRSS(bare1.pid(), cfg.samples, cfg.gap); err != nil {
		return nil, err
	}
	logf("RSS with 1 device: simulator %v KiB, bare %v KiB", r.rss1, r.bareRSS1)
	sim1.stop()

	// Round trips in alternating pairs, against device 0 of a simulator
	// with -devices 2: with one device the simulator prints every request
	// it serves, which is a transcript's cost, not the device's.
	const simID = "shellyplus1pm-00000b000000"
	simCh, bareCh := srv.watchFor(simID), srv.watchFor("bare1-0")
	rtSim, err := startSimulator(bin, srv.URL(), simID, 2, cfg.env)
	if err != nil {
		return nil, err
	}
	defer rtSim.stop()
	simConn, err := awaitConn(ctx, simCh, rtSim)
	if err != nil {
		return nil, err
	}
	defer simConn.CloseNow()
	bare1.stop()
	bare1, err = startBare(srv.URL(), "bare1", 1)
	if err != nil {
		return nil, err
	}
	defer bare1.stop()
	bareConn, err := awaitConn(ctx, bareCh, bare1)
	if err != nil {
		return nil, err
	}
	defer bareConn.CloseNow()
	for i := range cfg.pairs {
		for _, depth := range []int{1, 64} {
			n := cfg.seq
			if depth > 1 {
				n = cfg.pipe
			}
			var dSim, dBare time.Duration
			// Alternate who goes first, so a drift in the machine's load
			// does not always favour one.
			for k := range 2 {
				var err error
				if (i+k)%2 == 0 {
					dSim, err = roundTrips(ctx, simConn, n, depth)
				} else {
					dBare, err = roundTrips(ctx, bareConn, n, depth)
				}
				if err != nil {
					return nil, fmt.Errorf("round trips, depth %d: %w", depth, err)
				}
			}
			ratio := float64(dBare) / float64(dSim)
			if depth == 1 {
				r.seqSim, r.seqBare, r.seqRatio = append(r.seqSim, dSim), append(r.seqBare, dBare), append(r.seqRatio, ratio)
			} else {
				r.pipeSim, r.pipeBare, r.pipeRatio = append(r.pipeSim, dSim), append(r.pipeBare, dBare), append(r.pipeRatio, ratio)
			}
		}
	}
	simConn.CloseNow()
	bareConn.CloseNow()
	rtSim.stop()
	bare1.stop()

	// The fleet: connect, idle, restart.
	reached := srv.expect(cfg.n, true)
	var extra []string
	if cfg.localAddr != "" {
		extra = append(extra, "-local-addr", cfg.localAddr)
	}
	if cfg.metrics != "" {
		extra = append(extra, "-metrics", cfg.metrics)
	}
	sim, err := startSimulator(bin, srv.URL(), "shellyplus1pm-00000a000000", cfg.n, cfg.env, extra...)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	if err := waitFor(ctx, reached, fleetLimit(cfg.n), sim, "fleet connected"); err != nil {
		return nil, err
	}
	r.connect = time.Since(sim.start)
	logf("%d devices connected in %v", cfg.n, r.connect.Round(time.Millisecond))
	time.Sleep(cfg.settle)
	cpu0, err := cpuTime(sim.pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if r.rssN, err = sampleRSS(sim.pid(), cfg.samples, cfg.idle/time.Duration(max(cfg.samples-1, 1))); err != nil {
		return nil, err
	}
	cpu1, err := cpuTime(sim.pid())
	if err != nil {
		return nil, err
	}
	r.idleWindow = time.Since(t0)
	r.idleCPU = 100 * float64(cpu1-cpu0) / float64(r.idleWindow)
	r.perDevice = perDevice(r.rssN, r.rss1, cfg.n)

	dropped, err := srv.restart(cfg.down)
	if err != nil {
		return nil, err
	}
	reached = srv.expect(cfg.n, false)
	if err := waitFor(ctx, reached, fleetLimit(cfg.n), sim, "fleet back after the restart"); err != nil {
		return nil, err
	}
	r.back = time.Since(dropped)
	r.busiest, r.handshakes = srv.busiest(100 * time.Millisecond)
	sim.stop()

	if cfg.bareFleet {
		reached = srv.expect(cfg.n, true)
		bare, err := startBare(srv.URL(), "bare", cfg.n)
		if err != nil {
			return nil, err
		}
		defer bare.stop()
		if err := waitFor(ctx, reached, fleetLimit(cfg.n), bare, "bare fleet connected"); err != nil {
			return nil, err
		}
		r.bareConnect = time.Since(bare.start)
		time.Sleep(cfg.settle)
		if r.bareRSSN, err = sampleRSS(bare.pid(), cfg.samples, cfg.gap); err != nil {
			return nil, err
		}
		r.barePerDevice = perDevice(r.bareRSSN, r.bareRSS1, cfg.n)
		bare.stop()
	}
	return r, nil
}

// perDevice is (RSS(N) − RSS(1)) / (N − 1) for each sample of RSS(N),
// against the median of RSS(1).
func perDevice(rssN, rss1 []int, n int) []float64 {
	one := median(rss1)
	out := make([]float64, len(rssN))
	for i, v := range rssN {
		out[i] = float64(v-one) / float64(max(n-1, 1))
	}
	return out
}

func minMedMax[T int | float64 | time.Duration](xs []T, f func(T) string) string {
	if len(xs) == 0 {
		return "-"
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%s / %s / %s", f(lo), f(median(xs)), f(hi))
}

func report(logf func(string, ...any), cfg config, r *result) {
	kib := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	ratio := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	us := func(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }
	env := "default"
	if len(cfg.env) > 0 {
		env = strings.Join(cfg.env, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "black-box figures, %d devices (simulator environment: %s), min / median / max:\n", cfg.n, env)
	fmt.Fprintf(&b, "  RSS per device, simulator  %s KiB   ((RSS(N) − RSS(1)) / (N − 1), %d samples over %v idle)\n",
		minMedMax(r.perDevice, kib), len(r.rssN), cfg.idle)
	fmt.Fprintf(&b, "  RSS per device, bare       %s KiB\n", minMedMax(r.barePerDevice, kib))
	fmt.Fprintf(&b, "  RSS(1) simulator %d KiB, RSS(N) simulator %s KiB\n", median(r.rss1), minMedMax(r.rssN, func(v int) string { return fmt.Sprint(v) }))
	fmt.Fprintf(&b, "  all connected              %v (bare %v)\n", r.connect.Round(time.Millisecond), r.bareConnect.Round(time.Millisecond))
	share := 0.0
	if r.handshakes > 0 {
		share = 100 * float64(r.busiest) / float64(r.handshakes)
	}
	fmt.Fprintf(&b, "  all back after restart     %v (server down %v); busiest 100 ms: %d of %d handshakes = %.1f %%\n",
		r.back.Round(time.Millisecond), cfg.down, r.busiest, r.handshakes, share)
	fmt.Fprintf(&b, "  idle CPU                   %.2f %% of one core over %v\n", r.idleCPU, r.idleWindow.Round(time.Millisecond))
	fmt.Fprintf(&b, "  Ws.GetStatus through the simulator (-devices 2, device 0) as a share of the bare echo device, bare time / simulator time:\n")
	fmt.Fprintf(&b, "  Ws.GetStatus one at a time: x-of-bare %s (simulator %s, bare %s per request; %d pairs of %d)\n",
		minMedMax(r.seqRatio, ratio), us(median(r.seqSim)), us(median(r.seqBare)), cfg.pairs, cfg.seq)
	fmt.Fprintf(&b, "  Ws.GetStatus 64 in flight:  x-of-bare %s (simulator %s, bare %s per request; %d pairs of %d)\n",
		minMedMax(r.pipeRatio, ratio), us(median(r.pipeSim)), us(median(r.pipeBare)), cfg.pairs, cfg.pipe)
	logf("%s", b.String())
}
