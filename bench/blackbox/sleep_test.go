//go:build linux

package blackbox

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	flagSleepN      = flag.Int("bb.sleepn", 10000, "sleeping devices of BenchmarkSleeping")
	flagSleepPeriod = flag.Duration("bb.sleepperiod", 60*time.Second, "their -wakeup-period")
	flagSleepIdle   = flag.Duration("bb.sleepidle", time.Second, "their -awake-idle")
)

// sleepConfig is one run of sleeping devices.
type sleepConfig struct {
	n            int
	period, idle time.Duration
	samples      int
	gap          time.Duration
}

// sleepResult is what it measured.
type sleepResult struct {
	rss1, rssN     []int // KiB
	perDevice      float64
	busiest, wakes int // handshakes in the busiest 100 ms, and in all
	firstRound     time.Duration
	status         string // the simulator's last status line
	window         time.Duration
}

// BenchmarkSleeping runs a fleet of sleeping Plus H&Ts (-bb.sleepn, 10,000
// by default, -wakeup-period 60s) in one simulator process and reports how
// its first wakes spread (the busiest 100 ms window's share of handshakes
// at the server) and the process's RSS per sleeping device, (RSS(N) −
// RSS(1)) / (N − 1), sampled once every device has woken and slept once,
// while most sleep.
//
//	go test ./bench/blackbox -run '^$' -bench Sleeping -benchtime 1x -timeout 10m
func BenchmarkSleeping(b *testing.B) {
	cfg := sleepConfig{n: *flagSleepN, period: *flagSleepPeriod, idle: *flagSleepIdle, samples: 5, gap: time.Second}
	var r *sleepResult
	for b.Loop() {
		var err error
		if r, err = runSleeping(b.Context(), cfg, b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.perDevice, "KiB/sleeping-device")
	b.ReportMetric(100*float64(r.busiest)/float64(cfg.n), "%-of-fleet-busiest-100ms")
	b.ReportMetric(r.firstRound.Seconds(), "s-all-woke")
	reportSleeping(func(format string, args ...any) { fmt.Printf(format+"\n", args...) }, cfg, r)
}

// TestSleepingSmoke runs the same steps with 5 devices and a 1 s period,
// checking that each completes, not the figures.
func TestSleepingSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the simulator")
	}
	cfg := sleepConfig{n: 5, period: time.Second, idle: 100 * time.Millisecond, samples: 2, gap: 50 * time.Millisecond}
	r, err := runSleeping(t.Context(), cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reportSleeping(t.Logf, cfg, r)
	if r.wakes < cfg.n || r.busiest < 1 || r.rss1[0] <= 0 || r.rssN[0] <= 0 {
		t.Errorf("wakes %d, busiest %d, RSS %v %v", r.wakes, r.busiest, r.rss1, r.rssN)
	}
	if r.busiest == cfg.n {
		t.Errorf("all %d first wakes in one 100 ms window", cfg.n)
	}
}

func sleepArgs(cfg sleepConfig) []string {
	return []string{"-profile", "plusht-gen2", "-wakeup-period", cfg.period.String(), "-awake-idle", cfg.idle.String()}
}

func runSleeping(ctx context.Context, cfg sleepConfig, dir string) (*sleepResult, error) {
	r := &sleepResult{}
	srv, bin, err := serverAndSimulator(dir)
	if err != nil {
		return nil, err
	}
	defer srv.close()

	// RSS(1): one sleeping device, sampled after its first wake.
	sim1, err := startSimulator(bin, srv.URL(), "shellyplusht-00000d000000", 1, nil, sleepArgs(cfg)...)
	if err != nil {
		return nil, err
	}
	defer sim1.stop()
	if err := waitFor(ctx, srv.expect(1, true), fleetLimit(1), sim1, "the first wake"); err != nil {
		return nil, err
	}
	time.Sleep(cfg.idle + cfg.idle/2) // past the wake's idle time: asleep, by design
	if r.rss1, err = sampleRSS(sim1.pid(), cfg.samples, cfg.gap); err != nil {
		return nil, err
	}
	sim1.stop()

	// RSS(N): the fleet, sampled after every device woke once.
	srv.resetHandshakes()
	simN, err := startSimulator(bin, srv.URL(), "shellyplusht-00000e000000", cfg.n, nil, sleepArgs(cfg)...)
	if err != nil {
		return nil, err
	}
	defer simN.stop()
	if err := waitFor(ctx, srv.expect(cfg.n, true), cfg.period+fleetLimit(cfg.n), simN, "every device's first wake"); err != nil {
		return nil, err
	}
	r.firstRound = time.Since(simN.start)
	r.busiest, r.wakes = srv.busiest(100 * time.Millisecond)
	if r.rssN, err = sampleRSS(simN.pid(), cfg.samples, cfg.gap); err != nil {
		return nil, err
	}
	r.window = time.Since(simN.start)
	lines := strings.Split(strings.TrimSpace(simN.out.String()), "\n")
	r.status = lines[len(lines)-1]
	simN.stop()
	r.perDevice = float64(median(r.rssN)-median(r.rss1)) / float64(cfg.n-1)
	return r, nil
}

func reportSleeping(logf func(string, ...any), cfg sleepConfig, r *sleepResult) {
	logf("sleeping devices: %d plusht-gen2, -wakeup-period %v, -awake-idle %v", cfg.n, cfg.period, cfg.idle)
	logf("  first wakes: all %d within %.1f s; busiest 100 ms window %d handshakes = %.2f %% of the fleet (of %d handshakes)",
		cfg.n, r.firstRound.Seconds(), r.busiest, 100*float64(r.busiest)/float64(cfg.n), r.wakes)
	logf("  RSS(1) %v KiB, RSS(N) %v KiB (sampled %.0f–%.0f s after start)", r.rss1, r.rssN,
		r.firstRound.Seconds(), r.window.Seconds())
	logf("  per sleeping device: %.2f KiB", r.perDevice)
	logf("  simulator's last status line: %s", r.status)
}
