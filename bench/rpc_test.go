package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
)

// deviceID is the id of the benchmarked device.
const deviceID = "shellyplus1pm-c049ef8cf4e0"

// benchTimeout bounds one benchmark run; the runs take a few seconds.
const benchTimeout = 5 * time.Minute

// fullStatusFrame is the NotifyFullStatus a shellyws device with the default
// status sends; the bare client sends the same bytes as its first frame.
const fullStatusFrame = `{"src":"` + deviceID + `","dst":"ws","method":"NotifyFullStatus","params":{"ts":1700000000.00,"sys":{"mac":"C049EF8CF4E0"},"ws":{"connected":true}}}`

// baseline remembers the ns/op of every bare sub-benchmark run of this
// process, per benchmark, for the shellyws sub-benchmark to report its
// ratio against. With -count n the bare runs n times before shellyws does,
// and the ratio uses their mean.
var baseline struct {
	mu   sync.Mutex
	runs map[string][]bareRun
}

type bareRun struct {
	n  int
	ns float64
}

// recordBare records a bare run. testing calls a benchmark with a growing
// b.N and reports only the last call, so a call with a larger b.N than the
// previous one replaces it; a smaller or equal one starts a new -count round.
func recordBare(b *testing.B, name string) {
	baseline.mu.Lock()
	defer baseline.mu.Unlock()
	if baseline.runs == nil {
		baseline.runs = make(map[string][]bareRun)
	}
	r := bareRun{n: b.N, ns: float64(b.Elapsed().Nanoseconds()) / float64(b.N)}
	runs := baseline.runs[name]
	if k := len(runs); k > 0 && b.N > runs[k-1].n {
		runs = runs[:k-1]
	}
	baseline.runs[name] = append(runs, r)
}

// reportRatio reports the throughput of this run as a share of the bare
// runs', mean bare ns/op divided by this ns/op, as "x-of-bare". It needs the
// bare sub-benchmark to have run before in the same process (the order b.Run
// gives); with it filtered out there is no ratio. (testing.Benchmark cannot
// stand in: it deadlocks when called from inside a benchmark.)
func reportRatio(b *testing.B, name string) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	baseline.mu.Lock()
	runs := baseline.runs[name]
	baseline.mu.Unlock()
	if len(runs) == 0 {
		b.Logf("no ratio: %s did not run", name)
		return
	}
	mean := 0.0
	for _, r := range runs {
		mean += r.ns
	}
	mean /= float64(len(runs))
	b.ReportMetric(mean/ns, "x-of-bare")
}

func shellywsDevice(b *testing.B, url string, opts ...shellyws.Option) *shellyws.Component {
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	cfg.Server = &url
	c, err := shellyws.New(deviceID, append([]shellyws.Option{shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg))}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// runUntilDisconnect runs c until its first connection ends (the server
// closes it when its work is done) and returns the cause.
func runUntilDisconnect(b *testing.B, newDevice func(opts ...shellyws.Option) *shellyws.Component, work func(*shellyws.Component)) *shellyws.Component {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	var once sync.Once
	var cause error
	c := newDevice(shellyws.WithOnDisconnect(func(err error) {
		once.Do(func() { cause = err; cancel() })
	}))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if work != nil {
		work(c)
	}
	<-done
	b.StopTimer()
	if ctx.Err() == context.DeadlineExceeded {
		b.Fatalf("timed out; last error %v", c.LastError())
	}
	if websocket.CloseStatus(cause) != websocket.StatusNormalClosure {
		b.Fatalf("connection ended with %v, want the server's normal closure", cause)
	}
	return c
}

// dialBare connects the baseline client and sends the full status a device
// opens with, as shellyws does.
func dialBare(ctx context.Context, b *testing.B, url string) *websocket.Conn {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{shellyws.Subprotocol}})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(fullStatusFrame)); err != nil {
		c.CloseNow()
		b.Fatal(err)
	}
	return c
}

// bareEcho is the baseline device: a coder/websocket client that sends the
// full status and then echoes every frame it reads, reusing one buffer.
func bareEcho(b *testing.B, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	c := dialBare(ctx, b, url)
	defer c.CloseNow()
	c.SetReadLimit(1 << 20) // the device's own (WithReadLimit's default)
	buf := make([]byte, 0, 512)
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			b.StopTimer()
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				b.Fatal(err)
			}
			return
		}
		buf, err = readAll(rd, buf)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Write(ctx, typ, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func readAll(rd io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// benchRequests is benchmarks 1 and 2: the server sends b.N requests for
// Ws.GetStatus with depth of them in flight; one op is one request served.
func benchRequests(b *testing.B, depth int) {
	url := func(n int) string {
		return fmt.Sprintf("ws://%s/rt?n=%d&depth=%d", childAddr(b), n, depth)
	}
	bare := func(b *testing.B) {
		b.ReportAllocs()
		u := url(b.N)
		b.ResetTimer()
		bareEcho(b, u)
	}
	b.Run("bare", func(b *testing.B) {
		bare(b)
		recordBare(b, b.Name())
	})
	b.Run("shellyws", func(b *testing.B) {
		b.ReportAllocs()
		u := url(b.N)
		b.ResetTimer()
		runUntilDisconnect(b, func(opts ...shellyws.Option) *shellyws.Component {
			return shellywsDevice(b, u, opts...)
		}, nil)
		reportRatio(b, bareName(b))
	})
}

// bareName is the name of the bare sibling of the running sub-benchmark.
func bareName(b *testing.B) string {
	name := b.Name()
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i] + "/bare" + trailingProcs(name[i:])
		}
	}
	return name
}

// trailingProcs keeps the -N suffix go test adds for GOMAXPROCS, if any.
func trailingProcs(s string) string {
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == '-' {
			if _, err := strconv.Atoi(s[i+1:]); err == nil {
				return s[i:]
			}
			break
		}
	}
	return ""
}

// BenchmarkRoundTrip is benchmark 1: one request at a time.
func BenchmarkRoundTrip(b *testing.B) { benchRequests(b, 1) }

// BenchmarkPipelined is benchmark 2: 64 requests in flight.
func BenchmarkPipelined(b *testing.B) { benchRequests(b, 64) }

// statusDelta is the NotifyStatus delta of benchmark 3, a switch turned on.
var statusDelta = map[string]any{
	"switch:0": map[string]any{"id": 0, "output": true, "source": "WS_in"},
}

// statusFrame is the frame shellyws makes of statusDelta (with a fixed ts);
// the bare writer sends these bytes.
const statusFrame = `{"src":"` + deviceID + `","dst":"ws","method":"NotifyStatus","params":{"ts":1700000000.00,"switch:0":{"id":0,"output":true,"source":"WS_in"}}}`

// BenchmarkNotify is benchmark 3: one op is one NotifyStatus delta delivered
// to a server that reads them.
//
// NotifyStatus never blocks: it queues, and the queue drops the oldest
// entry when full. To count delivered deltas rather than dropped ones, the
// device's queue holds b.N, so the producer runs ahead and the connection's
// writer drains the queue as fast as it can; the op ends when the server has
// read the last one and closed the connection.
func BenchmarkNotify(b *testing.B) {
	url := func(n int) string { return fmt.Sprintf("ws://%s/notify?n=%d", childAddr(b), n) }
	bare := func(b *testing.B) {
		b.ReportAllocs()
		u := url(b.N)
		b.ResetTimer()
		ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
		defer cancel()
		c := dialBare(ctx, b, u)
		defer c.CloseNow()
		frame := []byte(statusFrame)
		for range b.N {
			if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
				b.Fatal(err)
			}
		}
		// Wait for the server's close: it has read them all.
		_, _, err := c.Read(ctx)
		b.StopTimer()
		if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			b.Fatal(err)
		}
	}
	b.Run("bare", func(b *testing.B) {
		bare(b)
		recordBare(b, b.Name())
	})
	b.Run("shellyws", func(b *testing.B) {
		b.ReportAllocs()
		u := url(b.N)
		ts := time.Unix(1700000000, 0)
		b.ResetTimer()
		c := runUntilDisconnect(b, func(opts ...shellyws.Option) *shellyws.Component {
			return shellywsDevice(b, u, append(opts,
				shellyws.WithQueueSize(b.N),
				shellyws.WithClock(func() time.Time { return ts }))...)
		}, func(c *shellyws.Component) {
			for range b.N {
				if err := c.NotifyStatus(statusDelta); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if d := c.Stats().Dropped; d != 0 {
			b.Fatalf("%d notifications dropped", d)
		}
		reportRatio(b, bareName(b))
	})
}
