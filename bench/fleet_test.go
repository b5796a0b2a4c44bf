package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/bench/stormdata"
)

var (
	fleetN    = flag.Int("fleet.n", 1000, "devices in the fleet and storm benchmarks")
	fleetIdle = flag.Duration("fleet.idle", 2*time.Second, "how long the fleet benchmark measures idle CPU")
	stormDown = flag.Duration("storm.down", 2*time.Second, "how long the storm benchmark's server refuses handshakes after its crash")
	fleetHeap = flag.String("fleet.heapprofile", "", "file the fleet benchmark writes a heap profile to while the fleet is connected and idle")
	stormOut  = flag.String("storm.out", "", "file the storm benchmark writes its per-100ms histograms to (JSON, for cmd/stormchart)")
)

// fleetTimeout bounds waiting for a whole fleet to (re)connect: the 60 s
// backoff cap, the 10 s the goal allows, and room for a slow machine.
const fleetTimeout = 2 * time.Minute

// fleetDeviceID is the id of device i: a model prefix and 12 hex digits.
func fleetDeviceID(i int) string { return fmt.Sprintf("shellyplus1pm-%012x", i) }

// fleet is N shellyws devices, each with its own Run goroutine.
type fleet struct {
	devices   []*shellyws.Component
	connects  atomic.Int64
	target    atomic.Int64  // close reached when connects gets there
	reached   chan struct{} // replaced by expect
	reachedMu sync.Mutex
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func newFleet(b *testing.B, n int, opts ...shellyws.Option) *fleet {
	url := "ws://" + childAddr(b) + "/fleet"
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	cfg.Server = &url
	f := &fleet{devices: make([]*shellyws.Component, n)}
	onConnect := shellyws.WithOnConnect(func() {
		if f.connects.Add(1) == f.target.Load() {
			f.reachedMu.Lock()
			close(f.reached)
			f.reachedMu.Unlock()
		}
	})
	for i := range f.devices {
		// Every device shares cfg: New copies it.
		c, err := shellyws.New(fleetDeviceID(i), append([]shellyws.Option{
			shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)), onConnect,
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		f.devices[i] = c
	}
	return f
}

// expect arranges for the returned channel to close once connects reaches
// total.
func (f *fleet) expect(total int64) <-chan struct{} {
	f.reachedMu.Lock()
	defer f.reachedMu.Unlock()
	f.reached = make(chan struct{})
	f.target.Store(total)
	if f.connects.Load() >= total {
		close(f.reached)
	}
	return f.reached
}

func (f *fleet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, c := range f.devices {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.Run(ctx)
		}()
	}
}

// stop ends the fleet. The server drops the connections first so that the
// TIME_WAIT sockets stay on its side and do not hold the ephemeral ports the
// next fleet dials from; no device redials in the moment before the cancel,
// since no backoff is shorter than half a second.
func (f *fleet) stop(b *testing.B) {
	ctlGet(b, "/ctl/stop?down=0s", nil)
	f.cancel()
	f.wg.Wait()
}

func (f *fleet) wait(b *testing.B, ch <-chan struct{}, what string, connected func() int64) {
	select {
	case <-ch:
	case <-time.After(fleetTimeout):
		shown := 0
		for _, c := range f.devices {
			if s := c.State(); s != shellyws.StateConnected && shown < 5 {
				shown++
				b.Logf("%s: %s, last error: %v", c.ID(), s, c.LastError())
			}
		}
		b.Fatalf("%s: only %d connected after %v", what, connected(), fleetTimeout)
	}
}

// mem is what the process holds: heap in use and goroutine stacks.
type mem struct{ heap, stack uint64 }

// footprint collects garbage and returns what the process holds.
func footprint() (m mem, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{ms.HeapInuse, ms.StackInuse}, runtime.NumGoroutine()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportFleet measures a connected fleet of n and reports its metrics;
// connect is the time it took to connect.
func reportFleet(b *testing.B, n int, connect time.Duration, mem0 mem, g0 int) {
	mem1, g1 := footprint()
	if *fleetHeap != "" {
		if err := writeHeapProfile(*fleetHeap); err != nil {
			b.Fatal(err)
		}
	}
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(*fleetIdle) // the measurement itself: nothing else runs
	cpu := float64(cpuTime()-c0) / float64(time.Since(t0))
	b.ReportMetric(connect.Seconds(), "connect-s")
	perDevice := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) / 1024 }
	b.ReportMetric(perDevice(mem1.heap+mem1.stack, mem0.heap+mem0.stack), "KiB/device")
	b.ReportMetric(perDevice(mem1.heap, mem0.heap), "heap-KiB/device")
	b.ReportMetric(perDevice(mem1.stack, mem0.stack), "stack-KiB/device")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/device")
	b.ReportMetric(cpu*100, "idle-cpu-%")
}

// BenchmarkFleet is benchmark 4: -fleet.n devices (1,000 unless the flag
// says otherwise) connect at once to one server in the child process; it
// reports the time until all are connected, the heap and stack memory and
// the goroutines per connected device, and the CPU the idle fleet uses (in
// % of one core, over -fleet.idle). The bare baseline is as many
// coder/websocket clients, each sending the same first frame and then
// reading on a goroutine of its own. Run it with -benchtime 1x: one op is a
// whole fleet.
func BenchmarkFleet(b *testing.B) {
	n := *fleetN
	childAddr(b)
	b.Run("bare", func(b *testing.B) {
		for range b.N {
			benchBareFleet(b, n)
		}
	})
	b.Run("shellyws", func(b *testing.B) {
		for range b.N {
			mem0, g0 := footprint()
			start := time.Now()
			f := newFleet(b, n)
			all := f.expect(int64(n))
			f.start()
			func() {
				defer f.stop(b)
				f.wait(b, all, "connect", f.connects.Load)
				connect := time.Since(start)
				reportFleet(b, n, connect, mem0, g0)
			}()
		}
	})
}

func benchBareFleet(b *testing.B, n int) {
	url := "ws://" + childAddr(b) + "/fleet"
	mem0, g0 := footprint()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		ctlGet(b, "/ctl/stop?down=0s", nil) // see fleet.stop
		cancel()
		wg.Wait()
	}()
	var connected atomic.Int64
	conns := make(chan *websocket.Conn, n)
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{shellyws.Subprotocol}})
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			if err := c.Write(ctx, websocket.MessageText, []byte(fullStatusFrame)); err != nil {
				errs <- err
				return
			}
			conns <- c
			connected.Add(1)
			for {
				_, rd, err := c.Reader(ctx)
				if err != nil {
					return
				}
				io.Copy(io.Discard, rd)
			}
		}()
	}
	for range n {
		select {
		case <-conns:
		case err := <-errs:
			b.Fatal(err)
		case <-time.After(fleetTimeout):
			b.Fatalf("only %d connected after %v", connected.Load(), fleetTimeout)
		}
	}
	connect := time.Since(start)
	reportFleet(b, n, connect, mem0, g0)
}

var stormRecords struct {
	mu   sync.Mutex
	runs []stormdata.Run
}

const stormBin = 100 * time.Millisecond

// BenchmarkStorm is benchmark 5: a connected fleet of -fleet.n devices sees
// its server crash (every connection dropped without a close frame) and
// refuse handshakes with 503 for -storm.down before it accepts again. The
// server counts every handshake attempt; the benchmark reports the time
// until every device is back (back-s), the largest number of attempts in any
// 100 ms window as a share of the devices (max-100ms-%-devices) and of all
// attempts (max-100ms-%-attempts), and attempts per device. "jitter" runs
// DefaultBackoff as shipped (randomization 0.5); "nojitter" the same policy
// with randomization 0, as the firmware retries. With -storm.out, the
// per-100ms histograms go to that file for cmd/stormchart. Run it with
// -benchtime 1x: one op is a whole storm.
func BenchmarkStorm(b *testing.B) {
	for _, tc := range []struct {
		name   string
		jitter float64
	}{{"jitter", 0.5}, {"nojitter", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				benchStorm(b, tc.name, tc.jitter)
			}
		})
	}
}

func benchStorm(b *testing.B, name string, jitter float64) {
	n := *fleetN
	policy := shellyws.DefaultBackoff // ±50 % jitter
	if jitter == 0 {
		// The same doubling from 1 s to 60 s without it: the storm to
		// compare with.
		policy = func(attempt int) time.Duration { return min(time.Second<<min(attempt-1, 6), time.Minute) }
	}
	f := newFleet(b, n, shellyws.WithBackoff(policy))
	all := f.expect(int64(n))
	f.start()
	defer f.stop(b)
	f.wait(b, all, "connect", f.connects.Load)
	// Let every connection count as healthy, as a fleet that has been up a
	// while does, so the backoff starts from its initial interval.
	time.Sleep(10 * time.Second) // WithHealthyAfter's default

	back := f.expect(int64(2 * n))
	start := time.Now()
	ctlGet(b, fmt.Sprintf("/ctl/stop?down=%v", *stormDown), nil)
	f.wait(b, back, "reconnect", func() int64 { return f.connects.Load() - int64(n) })
	backS := time.Since(start).Seconds()

	var rep attemptsReport
	ctlGet(b, "/ctl/attempts", &rep)
	maxWin := maxInWindow(rep.AttemptsMS, float64(stormBin/time.Millisecond))
	b.ReportMetric(backS, "back-s")
	b.ReportMetric(100*float64(maxWin)/float64(n), "max-100ms-%-devices")
	b.ReportMetric(100*float64(maxWin)/float64(len(rep.AttemptsMS)), "max-100ms-%-attempts")
	b.ReportMetric(float64(len(rep.AttemptsMS))/float64(n), "attempts/device")

	rec := stormdata.Run{
		Name: name, Jitter: jitter, N: n,
		DownMS: float64(*stormDown) / float64(time.Millisecond),
		BinMS:  float64(stormBin / time.Millisecond),
		Bins:   histogram(rep.AttemptsMS, float64(stormBin/time.Millisecond)),
		BackS:  backS, MaxPct: 100 * float64(maxWin) / float64(n), Refused: rep.Refused,
	}
	if err := saveStorm(rec); err != nil {
		b.Fatal(err)
	}
}

// maxInWindow returns the most of the times (ms) that fall in any window of
// width ms, [t, t+width).
func maxInWindow(times []float64, width float64) int {
	t := slices.Clone(times)
	slices.Sort(t)
	best, lo := 0, 0
	for hi := range t {
		for t[hi]-t[lo] >= width {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// histogram counts the times (ms) per bin of width ms, from 0.
func histogram(times []float64, width float64) []int {
	var bins []int
	for _, t := range times {
		i := int(math.Floor(max(t, 0) / width))
		for len(bins) <= i {
			bins = append(bins, 0)
		}
		bins[i]++
	}
	return bins
}

// saveStorm adds rec to the runs of this process (replacing an earlier run
// of the same name) and rewrites -storm.out with all of them.
func saveStorm(rec stormdata.Run) error {
	if *stormOut == "" {
		return nil
	}
	stormRecords.mu.Lock()
	defer stormRecords.mu.Unlock()
	stormRecords.runs = slices.DeleteFunc(stormRecords.runs, func(r stormdata.Run) bool { return r.Name == rec.Name })
	stormRecords.runs = append(stormRecords.runs, rec)
	data, err := json.MarshalIndent(stormRecords.runs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*stormOut, append(data, '\n'), 0o644)
}

func TestMaxInWindow(t *testing.T) {
	for _, tc := range []struct {
		times []float64
		want  int
	}{
		{nil, 0},
		{[]float64{5}, 1},
		{[]float64{0, 99.9, 100}, 2},
		{[]float64{300, 0, 50, 120, 140, 160, 260}, 3},
		{[]float64{0, 10, 20, 99.9, 100}, 4},
	} {
		if got := maxInWindow(tc.times, 100); got != tc.want {
			t.Errorf("maxInWindow(%v) = %d, want %d", tc.times, got, tc.want)
		}
	}
	if got, want := histogram([]float64{0, 99, 100, 350}, 100), []int{2, 1, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("histogram = %v, want %v", got, want)
	}
}
