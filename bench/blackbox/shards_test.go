//go:build linux

package blackbox

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var flagShards = flag.Int("bb.shards", 0, "BenchmarkShards: K simulator processes (-shard i/K) against K server processes; 0: as few as hold at most 19,000 devices each")

// maxPerShard is the most devices a shard holds: a process may open 20,000
// files here (soft and hard), and a shard's server holds one per device.
const maxPerShard = 19000

// shardKiBPerDevice is the memory a device costs a shard run, simulator
// and server together, for the check before it starts: at 4,000 devices
// in 2 shards the simulators held 37 KiB a device and the servers 36; the
// rest is room for a restart's peak.
const shardKiBPerDevice = 96

// shardConfig is one run of BenchmarkShards.
type shardConfig struct {
	n, shards, per                      int // per: devices of each shard, ⌈n/shards⌉
	samples                             int
	gap, settle, idle, down, serverPing time.Duration
	localAddr                           string
	env                                 []string
}

func (c shardConfig) total() int { return c.shards * c.per }

// planShards splits n devices over k shards, or over as few as hold at
// most limit each when k is 0. Every shard runs per = ⌈n/k⌉ devices: -shard
// derives device numbers from the same -devices in every shard.
func planShards(n, k, limit int) (shards, per int, err error) {
	if n < 1 || k < 0 || limit < 1 {
		return 0, 0, fmt.Errorf("shards: %d devices in %d shards of at most %d: want n ≥ 1, k ≥ 0", n, k, limit)
	}
	if k == 0 {
		k = (n + limit - 1) / limit
	}
	per = (n + k - 1) / k
	if per > limit {
		return 0, 0, fmt.Errorf("shards: %d devices in %d shards is %d a shard, more than %d (open files are capped at %d a process): use -bb.shards %d or more",
			n, k, per, limit, fileLimit(), (n+limit-1)/limit)
	}
	return k, per, nil
}

func shardConfigFromFlags() (shardConfig, error) {
	cfg := configFromFlags(100000)
	k, per, err := planShards(cfg.n, *flagShards, shardLimit())
	if err != nil {
		return shardConfig{}, err
	}
	local := cfg.localAddr
	if local == "" {
		local = "127.0.0.0/24"
	}
	return shardConfig{
		n: cfg.n, shards: k, per: per, samples: cfg.samples, gap: cfg.gap, settle: cfg.settle, idle: cfg.idle,
		down: cfg.down, serverPing: cfg.serverPing, localAddr: local, env: cfg.env,
	}, nil
}

// shardLimit is maxPerShard, or less where open files are capped lower,
// leaving 1,000 for the rest of a process.
func shardLimit() int { return max(1, min(maxPerShard, fileLimit()-1000)) }

// checkShards fails before anything starts when the machine cannot hold
// the run: memory for the simulators and servers, and source ports.
func checkShards(cfg shardConfig) error {
	if need, avail := cfg.total()*shardKiBPerDevice, meminfo("MemAvailable:"); avail > 0 && need > avail {
		return fmt.Errorf("shards: %d devices need about %.1f GiB (%d KiB a device, simulator and server), %.1f GiB available",
			cfg.total(), float64(need)/(1<<20), shardKiBPerDevice, float64(avail)/(1<<20))
	}
	p, err := netip.ParsePrefix(cfg.localAddr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return fmt.Errorf("shards: source addresses %q: want an IPv4 prefix of /24 or wider", cfg.localAddr)
	}
	// Every shard binds its dials to the same source addresses, and a
	// bound dial takes a port of its address whatever the destination.
	hosts := 1<<(32-p.Bits()) - 2
	lo, hi := portRange()
	if each := (cfg.total() + hosts - 1) / hosts; each > (hi-lo+1)/2 {
		return fmt.Errorf("shards: %d devices from %d source addresses is %d ports an address, more than half of %d–%d: use a wider -bb.local-addr",
			cfg.total(), hosts, each, lo, hi)
	}
	return nil
}

// portRange is the machine's range of ephemeral ports.
func portRange() (lo, hi int) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	f := strings.Fields(string(data))
	if err != nil || len(f) != 2 {
		return 32768, 60999
	}
	lo, _ = strconv.Atoi(f[0])
	hi, _ = strconv.Atoi(f[1])
	return lo, hi
}

// shardResult is what a shard run measured.
type shardResult struct {
	machine             string
	rss1                []int         // KiB, a one-device simulator
	connect             time.Duration // from the first simulator's start until every server counted its shard
	window              idle          // the simulators together, the servers pinging
	serverCPU           float64       // % of one core, the servers together over the window
	serverRSS           int           // KiB, the servers together at the window's end
	steady              int           // KiB, the simulators together: the larger of after connect and after the window
	perDevice           float64       // (steady − K × RSS(1)) / (N − K)
	back                time.Duration // from the first drop until every server counted its shard again
	busiest, handshakes int           // of the restart, across all servers
}

// BenchmarkShards runs a fleet as a Kubernetes user runs a large one: K
// simulator processes, -shard i/K with -devices ⌈N/K⌉ each, the same -id
// and -local-addr, each against a server process of its own (the test
// binary re-executed), all on loopback. It measures the time until every
// device of every shard sent NotifyFullStatus, the simulators' RSS and
// idle CPU with the servers pinging, the time until all are back after
// every server restarted at once (dropping its connections without a close
// frame), and the busiest 100 ms of those handshakes across all servers.
//
//	go test ./bench/blackbox -run '^$' -bench Shards -benchtime 1x -timeout 30m -args -bb.n=20000 -bb.shards=2
func BenchmarkShards(b *testing.B) {
	cfg, err := shardConfigFromFlags()
	if err != nil {
		b.Fatal(err)
	}
	var r *shardResult
	for b.Loop() {
		if r, err = runShards(b.Context(), cfg, b.TempDir(), b.Logf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.connect.Seconds(), "s-connected")
	b.ReportMetric(r.back.Seconds(), "s-back")
	b.ReportMetric(100*float64(r.busiest)/float64(max(r.handshakes, 1)), "%-busiest-100ms")
	b.ReportMetric(float64(r.steady)/1024, "MiB-simulators")
	b.ReportMetric(r.perDevice, "KiB/device")
	b.ReportMetric(r.window.cpu*1000/float64(cfg.total()), "%-cpu-per-1k-pinged")
	reportShards(func(format string, args ...any) { fmt.Printf(format+"\n", args...) }, cfg, r)
}

// TestShardsSmoke runs the shard benchmark's steps with 6 devices in 2
// shards and servers that ping every 50 ms, checking that each step
// completes and the pings were answered, not the figures.
func TestShardsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the simulator")
	}
	cfg := shardConfig{
		n: 6, shards: 2, per: 3, samples: 2, gap: 50 * time.Millisecond, settle: 50 * time.Millisecond,
		idle: 400 * time.Millisecond, serverPing: 50 * time.Millisecond, localAddr: "127.0.0.0/24",
	}
	r, err := runShards(t.Context(), cfg, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	reportShards(t.Logf, cfg, r)
	if r.connect <= 0 || r.back <= 0 || r.handshakes < cfg.n || r.busiest < 1 {
		t.Errorf("connect %v, back %v, handshakes %d, busiest %d; want ≥ %d handshakes", r.connect, r.back, r.handshakes, r.busiest, cfg.n)
	}
	if len(r.rss1) == 0 || r.rss1[0] <= 0 || r.steady <= 0 || r.serverRSS <= 0 {
		t.Errorf("RSS: one device %v, simulators %d, servers %d", r.rss1, r.steady, r.serverRSS)
	}
	if p := r.window.pings; p.answered < int64(cfg.n)*4 || p.missed != 0 {
		t.Errorf("server pings %+v in the window, want ≥ %d answered and none missed", p, cfg.n*4)
	}
}

// TestPlanShards checks how a fleet is split: at most the limit a shard,
// the same count in each.
func TestPlanShards(t *testing.T) {
	for _, c := range []struct{ n, k, limit, shards, per int }{
		{100000, 0, 19000, 6, 16667},
		{20000, 2, 19000, 2, 10000},
		{4000, 2, 19000, 2, 2000},
		{7, 2, 19000, 2, 4},
		{19000, 0, 19000, 1, 19000},
		{19001, 0, 19000, 2, 9501},
	} {
		shards, per, err := planShards(c.n, c.k, c.limit)
		if err != nil || shards != c.shards || per != c.per {
			t.Errorf("planShards(%d, %d, %d) = %d, %d, %v; want %d, %d", c.n, c.k, c.limit, shards, per, err, c.shards, c.per)
		}
	}
	for _, c := range []struct{ n, k, limit int }{{100000, 5, 19000}, {0, 0, 19000}, {10, -1, 19000}} {
		if _, _, err := planShards(c.n, c.k, c.limit); err == nil {
			t.Errorf("planShards(%d, %d, %d): no error", c.n, c.k, c.limit)
		}
	}
}

func runShards(ctx context.Context, cfg shardConfig, dir string, logf func(string, ...any)) (*shardResult, error) {
	r := &shardResult{machine: machine()}
	if err := checkShards(cfg); err != nil {
		return nil, err
	}
	bin, err := buildSimulator(dir)
	if err != nil {
		return nil, err
	}
	k := cfg.shards
	servers := make([]*serverProc, k)
	defer func() {
		_ = errAll(k, func(i int) error {
			if servers[i] != nil {
				servers[i].stop()
			}
			return nil
		})
	}()
	if err := errAll(k, func(i int) error {
		var err error
		servers[i], err = startServerProc(fmt.Sprintf("server %d/%d", i, k), cfg.serverPing)
		return err
	}); err != nil {
		return nil, err
	}
	// with adds a shard's simulator output to a server's error.
	with := func(err error, sim *child) error {
		if err == nil || sim == nil {
			return err
		}
		return fmt.Errorf("%w\n%s output:\n%s", err, sim.name, sim.out)
	}

	// RSS(1): one device against server 0.
	if _, err := servers[0].call("expect 1", "ok", 30*time.Second); err != nil {
		return nil, err
	}
	sim1, err := startSimulator(bin, servers[0].URL(), "shellyplus1pm-00000c000000", 1, cfg.env)
	if err != nil {
		return nil, err
	}
	defer sim1.stop()
	if _, err := servers[0].callTime("await", "reached", fleetLimit(1)); err != nil {
		return nil, with(err, sim1)
	}
	time.Sleep(cfg.settle) // let the new process settle before sampling
	if r.rss1, err = sampleRSS(sim1.pid(), cfg.samples, cfg.gap); err != nil {
		return nil, err
	}
	sim1.stop()

	// The shards connect.
	expect := fmt.Sprintf("expect %d", cfg.per)
	if err := errAll(k, func(i int) error {
		_, err := servers[i].call(expect, "ok", 30*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	sims := make([]*child, k)
	defer func() {
		_ = errAll(k, func(i int) error {
			if sims[i] != nil {
				sims[i].stop()
			}
			return nil
		})
	}()
	for i := range k {
		sims[i], err = startSimulator(bin, servers[i].URL(), "shellyplus1pm-00000f000000", cfg.per, cfg.env,
			"-shard", fmt.Sprintf("%d/%d", i, k), "-local-addr", cfg.localAddr)
		if err != nil {
			return nil, err
		}
		sims[i].name = fmt.Sprintf("simulator -shard %d/%d", i, k)
	}
	awaitAll := func() ([]time.Time, error) {
		at := make([]time.Time, k)
		return at, errAll(k, func(i int) error {
			var err error
			at[i], err = servers[i].callTime("await", "reached", fleetLimit(cfg.total()))
			return with(err, sims[i])
		})
	}
	reached, err := awaitAll()
	if err != nil {
		return nil, err
	}
	r.connect = slices.MaxFunc(reached, time.Time.Compare).Sub(sims[0].start)
	logf("%d devices in %d shards connected in %v", cfg.total(), k, r.connect.Round(time.Millisecond))

	// Idle, the servers pinging.
	time.Sleep(cfg.settle) // let the fleet settle before sampling, by design
	simPids, serverPids := make([]int, k), make([]int, k)
	for i := range k {
		simPids[i], serverPids[i] = sims[i].pid(), servers[i].pid()
	}
	counts := func() (pingCounts, error) {
		var sum pingCounts
		for _, s := range servers {
			c, err := s.pingCounts()
			if err != nil {
				return sum, err
			}
			sum = sum.plus(c)
		}
		return sum, nil
	}
	s0, err := sumCPU(serverPids)
	if err != nil {
		return nil, err
	}
	if r.window, err = measureIdle(simPids, cfg.idle, cfg.samples, counts); err != nil {
		return nil, err
	}
	s1, err := sumCPU(serverPids)
	if err != nil {
		return nil, err
	}
	r.serverCPU = 100 * float64(s1-s0) / float64(r.window.length)
	if r.serverRSS, err = sumRSS(serverPids); err != nil {
		return nil, err
	}
	r.steady = max(r.window.rss[0], r.window.rss[len(r.window.rss)-1])
	r.perDevice = float64(r.steady-k*median(r.rss1)) / float64(max(cfg.total()-k, 1))

	// Every server restarts at once.
	dropped := make([]time.Time, k)
	restart := "restart " + cfg.down.String()
	if err := errAll(k, func(i int) error {
		var err error
		dropped[i], err = servers[i].callTime(restart, "dropped", cfg.down+time.Minute)
		return err
	}); err != nil {
		return nil, err
	}
	if reached, err = awaitAll(); err != nil {
		return nil, err
	}
	r.back = slices.MaxFunc(reached, time.Time.Compare).Sub(slices.MinFunc(dropped, time.Time.Compare))
	logf("all back in %v", r.back.Round(time.Millisecond))
	var all []time.Time
	for _, s := range servers {
		ts, err := s.handshakes()
		if err != nil {
			return nil, err
		}
		all = append(all, ts...)
	}
	r.busiest, r.handshakes = busiest(all, 100*time.Millisecond)
	return r, nil
}

func reportShards(logf func(string, ...any), cfg shardConfig, r *shardResult) {
	mib := func(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
	var b strings.Builder
	fmt.Fprintf(&b, "shards: %d devices in %d shards of %d (-shard i/%d -devices %d -local-addr %s), each against a server process of its own; the servers %s\n",
		cfg.total(), cfg.shards, cfg.per, cfg.shards, cfg.per, cfg.localAddr, pingPolicy(cfg.serverPing))
	fmt.Fprintf(&b, "  %s\n", r.machine)
	fmt.Fprintf(&b, "  all connected                  %v   (%s)\n", round(r.connect), goal(r.connect <= 60*time.Second, "at 100,000 ≤ 60 s"))
	fmt.Fprintf(&b, "  all back after every server restarted at once   %v, servers down %v   (%s)\n",
		round(r.back), cfg.down, goal(r.back <= 90*time.Second, "at 100,000 ≤ 90 s"))
	share := 100 * float64(r.busiest) / float64(max(r.handshakes, 1))
	fmt.Fprintf(&b, "  busiest 100 ms of those handshakes, all servers   %d of %d = %.1f %%   (%s)\n",
		r.busiest, r.handshakes, share, goal(share <= 8, "at 100,000 ≤ 8 %"))
	rss := r.window.rss
	fmt.Fprintf(&b, "  simulators' RSS, all shards    steady %s = %.1f KiB per device ((steady − %d × RSS(1)) / (N − %d); %.1f KiB gross)\n",
		mib(r.steady), r.perDevice, cfg.shards, cfg.shards, float64(r.steady)/float64(cfg.total()))
	fmt.Fprintf(&b, "                                 after connect %s, after %v %s; RSS(1) %d KiB\n",
		mib(rss[0]), round(r.window.length), mib(rss[len(rss)-1]), median(r.rss1))
	p := r.window.pings
	fmt.Fprintf(&b, "  simulators' idle CPU           %.2f %% of one core over %v = %.3f %% per 1,000 devices (server pings sent %d, answered %d, missed %d)\n",
		r.window.cpu, round(r.window.length), r.window.cpu*1000/float64(cfg.total()), p.sent, p.answered, p.missed)
	fmt.Fprintf(&b, "  servers                        RSS %s (%.1f KiB per device), %.2f %% of one core over the same window\n",
		mib(r.serverRSS), float64(r.serverRSS)/float64(cfg.total()), r.serverCPU)
	logf("%s", b.String())
}
