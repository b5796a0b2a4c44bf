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
	flagN        = flag.Int("bb.n", 0, "devices in the fleet; 0: 1000 (BenchmarkBlackbox, BenchmarkChannelsRSS), 100000 in all shards (BenchmarkShards)")
	flagPairs    = flag.Int("bb.pairs", 15, "alternating simulator/bare pairs of round-trip runs")
	flagSeq      = flag.Int("bb.reqs", 5000, "requests per one-at-a-time run")
	flagPipe     = flag.Int("bb.pipereqs", 20000, "requests per 64-in-flight run")
	flagDown     = flag.Duration("bb.down", 0, "how long the restarted server stays down (refusing connections)")
	flagSamples  = flag.Int("bb.samples", 5, "RSS samples of an idle process")
	flagGap      = flag.Duration("bb.gap", time.Second, "time between RSS samples of the one-device processes")
	flagIdle     = flag.Duration("bb.idle", 65*time.Second, "each idle window of a fleet for CPU and RSS: two keepalive rounds of 30 s and some, so that every device pings or is pinged twice in it")
	flagPing     = flag.Duration("bb.serverping", 30*time.Second, "the server pings every connection at this interval (each from a random phase), as Fleet Manager and Home Assistant's remote endpoint do; 0: a silent server (the fleets then have one idle window, not two)")
	flagSettle   = flag.Duration("bb.settle", 2*time.Second, "wait after all devices connected before sampling")
	flagEnv      = flag.String("bb.env", "", "extra environment of the simulator, space-separated, e.g. GOGC=50")
	flagLocal    = flag.String("bb.local-addr", "", "the simulator's -local-addr, e.g. 127.0.0.0/24 past ~28,000 devices (BenchmarkShards: 127.0.0.0/24 when empty)")
	flagNoBareFl = flag.Bool("bb.nobarefleet", false, "skip the bare fleet")
	flagMetrics  = flag.String("bb.metrics", "", "the fleet simulator's -metrics address, e.g. 127.0.0.1:9090, to profile it during the run through /debug/pprof")
)

// config is one run's parameters.
type config struct {
	n, pairs, seq, pipe, samples int
	down, gap, settle, idle      time.Duration
	serverPing                   time.Duration
	env                          []string
	localAddr, metrics           string
	bareFleet                    bool
}

// configFromFlags is the run the flags ask for, with n devices unless
// -bb.n says otherwise.
func configFromFlags(n int) config {
	if *flagN > 0 {
		n = *flagN
	}
	return config{
		n: n, pairs: *flagPairs, seq: *flagSeq, pipe: *flagPipe, samples: *flagSamples,
		down: *flagDown, gap: *flagGap, settle: *flagSettle, idle: *flagIdle, serverPing: *flagPing,
		env: strings.Fields(*flagEnv), localAddr: *flagLocal, metrics: *flagMetrics, bareFleet: !*flagNoBareFl,
	}
}

// result is what one run measured.
type result struct {
	machine             string
	seqRatio, pipeRatio []float64 // bare time / simulator time, per pair
	seqSim, seqBare     []time.Duration
	pipeSim, pipeBare   []time.Duration
	rss1, bareRSS1      []int // KiB
	sim, bare           fleetRun
	back                time.Duration // from the drop until all sent NotifyFullStatus again
	busiest, handshakes int
}

// fleetRun is what a fleet of one process measured once connected.
type fleetRun struct {
	connect time.Duration
	// The idle windows: with the server pinging (unless -bb.serverping
	// is 0), then silent.
	windows []idle
	pinged  bool
	// steady is the larger of the RSS after connect and after the first
	// window (two keepalive rounds), in KiB; perDevice is (steady −
	// RSS(1)) / (N − 1).
	steady    int
	perDevice float64
}

// pingWindow and silentWindow are the fleet's windows, nil if none.
func (f *fleetRun) pingWindow() *idle {
	if f.pinged && len(f.windows) > 0 {
		return &f.windows[0]
	}
	return nil
}

func (f *fleetRun) silentWindow() *idle {
	if len(f.windows) > 0 && (!f.pinged || len(f.windows) > 1) {
		return &f.windows[len(f.windows)-1]
	}
	return nil
}

// cpuPer1000 is a window's idle CPU per 1,000 devices, % of one core.
func cpuPer1000(w *idle, n int) float64 {
	if w == nil {
		return 0
	}
	return w.cpu * 1000 / float64(n)
}

func BenchmarkBlackbox(b *testing.B) {
	cfg := configFromFlags(1000)
	var r *result
	for b.Loop() {
		var err error
		if r, err = run(b.Context(), cfg, b.TempDir(), b.Logf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.sim.perDevice, "KiB/device")
	if cfg.bareFleet {
		b.ReportMetric(r.bare.perDevice, "KiB/device-bare")
	}
	b.ReportMetric(median(r.seqRatio), "rt-x-of-bare")
	b.ReportMetric(median(r.pipeRatio), "rt64-x-of-bare")
	b.ReportMetric(r.sim.connect.Seconds(), "s-connected")
	b.ReportMetric(r.back.Seconds(), "s-back")
	b.ReportMetric(100*float64(r.busiest)/float64(r.handshakes), "%-busiest-100ms")
	if w := r.sim.pingWindow(); w != nil {
		b.ReportMetric(cpuPer1000(w, cfg.n), "%-cpu-per-1k-pinged")
		if cfg.bareFleet {
			b.ReportMetric(cpuPer1000(r.bare.pingWindow(), cfg.n), "%-cpu-per-1k-pinged-bare")
		}
	}
	b.ReportMetric(cpuPer1000(r.sim.silentWindow(), cfg.n), "%-cpu-per-1k-silent")
	if cfg.bareFleet {
		b.ReportMetric(cpuPer1000(r.bare.silentWindow(), cfg.n), "%-cpu-per-1k-silent-bare")
	}
	report(func(format string, args ...any) { fmt.Printf(format+"\n", args...) }, cfg, r)
}

// TestSmoke runs every step with a handful of devices and a server that
// pings every 50 ms, and checks that each completed and that both fleets
// answered the server's pings; the figures mean nothing at this size.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the simulator")
	}
	cfg := config{
		n: 5, pairs: 1, seq: 20, pipe: 200, samples: 2, gap: 50 * time.Millisecond, settle: 50 * time.Millisecond,
		idle: 400 * time.Millisecond, serverPing: 50 * time.Millisecond, bareFleet: true,
	}
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
	if r.rss1[0] <= 0 || r.bareRSS1[0] <= 0 || r.sim.steady <= 0 || r.bare.steady <= 0 {
		t.Errorf("RSS: %v %v %d %d", r.rss1, r.bareRSS1, r.sim.steady, r.bare.steady)
	}
	for name, f := range map[string]fleetRun{"simulator": r.sim, "bare": r.bare} {
		if len(f.windows) != 2 || len(f.windows[0].rss) != 2 {
			t.Fatalf("%s: windows %+v, want two of two samples", name, f.windows)
		}
		// Each device is pinged about 8 times in the window; half of
		// that leaves room for a loaded machine.
		if p := f.pingWindow().pings; p.answered < int64(cfg.n)*4 || p.missed != 0 {
			t.Errorf("%s: server pings %+v in the pinging window, want ≥ %d answered and none missed", name, p, cfg.n*4)
		}
		if p := f.silentWindow().pings; p.sent != 0 {
			t.Errorf("%s: server pings %+v in the silent window, want none", name, p)
		}
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
	r := &result{machine: machine()}
	srv, bin, err := serverAndSimulator(dir)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	srv.setPing(cfg.serverPing)

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
	// it serves, which is a transcript's cost, not the device's. The
	// server does not ping these connections: the driver reads them.
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

	// The fleet: connect, idle with the server pinging and silent, restart.
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
	if r.sim, err = idleFleet(ctx, srv, sim, reached, cfg, r.rss1, logf); err != nil {
		return nil, err
	}
	dropped, err := srv.restart(cfg.down)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, srv.current(), fleetLimit(cfg.n), sim, "fleet back after the restart"); err != nil {
		return nil, err
	}
	back, _ := srv.awaitReached(nil)
	r.back = back.Sub(dropped)
	r.busiest, r.handshakes = srv.busiest(100 * time.Millisecond)
	sim.stop()

	if cfg.bareFleet {
		reached = srv.expect(cfg.n, true)
		bare, err := startBare(srv.URL(), "bare", cfg.n)
		if err != nil {
			return nil, err
		}
		defer bare.stop()
		if r.bare, err = idleFleet(ctx, srv, bare, reached, cfg, r.bareRSS1, logf); err != nil {
			return nil, err
		}
		bare.stop()
	}
	return r, nil
}

// idleFleet waits until the fleet of c has connected (reached), then
// measures its idle windows: with the server pinging every cfg.serverPing
// and with the server silent (only the latter when cfg.serverPing is 0).
// It leaves the server pinging as before.
func idleFleet(ctx context.Context, srv *server, c *child, reached <-chan struct{}, cfg config, rss1 []int, logf func(string, ...any)) (fleetRun, error) {
	var f fleetRun
	if err := waitFor(ctx, reached, fleetLimit(cfg.n), c, "fleet connected"); err != nil {
		return f, err
	}
	at, _ := srv.awaitReached(nil)
	f.connect = at.Sub(c.start)
	logf("%s: %d devices connected in %v", c.name, cfg.n, f.connect.Round(time.Millisecond))
	counts := func() (pingCounts, error) { return srv.pingCounts(), nil }
	window := func() error {
		time.Sleep(cfg.settle) // let the fleet settle before sampling, by design
		w, err := measureIdle([]int{c.pid()}, cfg.idle, cfg.samples, counts)
		if err != nil {
			return fmt.Errorf("%s: idle window: %w; output:\n%s", c.name, err, c.out)
		}
		f.windows = append(f.windows, w)
		return nil
	}
	if cfg.serverPing > 0 {
		f.pinged = true
		if err := window(); err != nil {
			return f, err
		}
		srv.setPing(0)
		defer srv.setPing(cfg.serverPing)
	}
	if err := window(); err != nil {
		return f, err
	}
	first := f.windows[0].rss
	f.steady = max(first[0], first[len(first)-1])
	f.perDevice = float64(f.steady-median(rss1)) / float64(max(cfg.n-1, 1))
	return f, nil
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
	ratio := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	us := func(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }
	env := "default"
	if len(cfg.env) > 0 {
		env = strings.Join(cfg.env, " ")
	}
	var b strings.Builder
	windows := "one idle window, the server silent"
	if cfg.serverPing > 0 {
		windows = "two idle windows: the server's pings (" + pingPolicy(cfg.serverPing) + "), then silent"
	}
	fmt.Fprintf(&b, "black-box figures, %d devices (simulator environment: %s); %s\n", cfg.n, env, windows)
	fmt.Fprintf(&b, "  %s\n", r.machine)
	type fleet struct {
		name string
		f    *fleetRun
		rss1 []int
	}
	fleets := []fleet{{"simulator", &r.sim, r.rss1}}
	if cfg.bareFleet {
		fleets = append(fleets, fleet{"bare", &r.bare, r.bareRSS1})
	}
	fmt.Fprintf(&b, "  steady RSS per device (max of after connect and after the first idle window, − RSS(1), / (N − 1)):\n")
	for _, fl := range fleets {
		first := fl.f.windows[0].rss
		fmt.Fprintf(&b, "    %-9s  %.1f KiB   (RSS(1) %d KiB; RSS(N) after connect %d KiB, after %v %d KiB",
			fl.name, fl.f.perDevice, median(fl.rss1), first[0], round(fl.f.windows[0].length), first[len(first)-1])
		if w := fl.f.silentWindow(); w != nil && fl.f.pinged {
			fmt.Fprintf(&b, ", after the silent window %d KiB", w.rss[len(w.rss)-1])
		}
		fmt.Fprintf(&b, ")")
		if fl.name == "simulator" {
			fmt.Fprintf(&b, "   (%s)", goal(fl.f.perDevice <= 8, "≤ 8 KiB"))
		}
		fmt.Fprintf(&b, "\n")
	}
	for _, kind := range []string{"server pings", "silent server"} {
		fmt.Fprintf(&b, "  idle CPU per 1,000 devices, %s:\n", kind)
		for _, fl := range fleets {
			w := fl.f.silentWindow()
			if kind == "server pings" {
				w = fl.f.pingWindow()
			}
			if w == nil {
				fmt.Fprintf(&b, "    %-9s  -\n", fl.name)
				continue
			}
			fmt.Fprintf(&b, "    %-9s  %.3f %% of one core   (%.2f %% over %v; server pings sent %d, answered %d, missed %d)",
				fl.name, cpuPer1000(w, cfg.n), w.cpu, round(w.length), w.pings.sent, w.pings.answered, w.pings.missed)
			if bare := r.bare.pingWindow(); fl.name == "simulator" && kind == "server pings" && cfg.bareFleet && bare != nil {
				fmt.Fprintf(&b, "   (%s)", goal(w.cpu <= bare.cpu, "≤ bare"))
			}
			fmt.Fprintf(&b, "\n")
		}
	}
	fmt.Fprintf(&b, "  all connected              %v", r.sim.connect.Round(time.Millisecond))
	if cfg.bareFleet {
		fmt.Fprintf(&b, " (bare %v)", r.bare.connect.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n")
	share := 0.0
	if r.handshakes > 0 {
		share = 100 * float64(r.busiest) / float64(r.handshakes)
	}
	fmt.Fprintf(&b, "  all back after restart     %v (server down %v); busiest 100 ms: %d of %d handshakes = %.1f %%\n",
		r.back.Round(time.Millisecond), cfg.down, r.busiest, r.handshakes, share)
	fmt.Fprintf(&b, "  Ws.GetStatus through the simulator (-devices 2, device 0) as a share of the bare echo device, bare time / simulator time, min / median / max:\n")
	fmt.Fprintf(&b, "  Ws.GetStatus one at a time: x-of-bare %s (simulator %s, bare %s per request; %d pairs of %d)   (%s)\n",
		minMedMax(r.seqRatio, ratio), us(median(r.seqSim)), us(median(r.seqBare)), cfg.pairs, cfg.seq, goal(median(r.seqRatio) >= 0.9, "median ≥ 0.9"))
	fmt.Fprintf(&b, "  Ws.GetStatus 64 in flight:  x-of-bare %s (simulator %s, bare %s per request; %d pairs of %d)   (%s)\n",
		minMedMax(r.pipeRatio, ratio), us(median(r.pipeSim)), us(median(r.pipeBare)), cfg.pairs, cfg.pipe, goal(median(r.pipeRatio) >= 0.9, "median ≥ 0.9"))
	logf("%s", b.String())
}

// goal says whether a figure meets the goal what.
func goal(ok bool, what string) string {
	if ok {
		return "goal " + what + ": met"
	}
	return "goal " + what + ": MISSED"
}

// round rounds d for a report: to the second from 10 s, else to 10 ms.
func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// pingPolicy says how a server pings, for a report.
func pingPolicy(every time.Duration) string {
	if every == 0 {
		return "never ping"
	}
	return fmt.Sprintf("ping every connection every %v, each from a random phase", every)
}
