package shellyws_test

// Hostile and broken servers: each test stands up a server that misbehaves in
// one way and checks that the device stays within its bounds, that nothing
// waits forever, and that it recovers by redialling. The bounds are stated
// next to the constants below and in SECURITY.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// Timeouts the hostile tests give the device, short so that every failure
// mode is seen many times within a test.
const (
	hostileDialTimeout  = 200 * time.Millisecond
	hostileWriteTimeout = 200 * time.Millisecond
	hostilePingInterval = 50 * time.Millisecond
	hostilePingTimeout  = 100 * time.Millisecond
	// hostileMargin is what a timeout may overshoot by on a loaded 2-core
	// machine under -race (2.4 s was seen with other test binaries
	// running); well under waitTimeout, so a device that never notices
	// still fails.
	hostileMargin = 3 * time.Second
)

// Bounds the device must stay within against a hostile server.
const (
	// hostileDeviceFixedGoroutines are the goroutines of one device besides
	// its handlers (SECURITY.md): Run's, the dial or the handling of a
	// connection's end, the flusher and the callback runner.
	hostileDeviceFixedGoroutines = 4
	// hostileHeapSlack is how far the live heap may grow over its baseline
	// while a server attacks; the measured figures are in SECURITY.md.
	hostileHeapSlack = 32 << 20
	// hostileAllocBudget bounds every byte allocated (freed or not) while
	// a server announces a 1 GiB frame.
	hostileAllocBudget = 64 << 20
)

// hostileLibraryGoroutines counts the goroutines running code of package shellyws:
// Run, the dial, the flusher, the handlers and the callback runner of every
// component in the process, and the process's poller while it delivers.
func hostileLibraryGoroutines() int {
	n := 0
	for _, g := range hostileGoroutineStacks() {
		if bytes.Contains(g, []byte("github.com/shellyws/shellyws.(")) {
			n++
		}
	}
	return n
}

func hostileGoroutineStacks() [][]byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Split(buf[:n], []byte("\n\n"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// hostileCount is one sample of the library's goroutines, sorted by what
// SECURITY.md bounds.
type hostileCount struct {
	// serving is the most requests one connection serves at once: its
	// goroutines running a handler (serveOne), on the poller or handed
	// off it. Each holds one of the connection's maxInFlight slots.
	serving int
	// fixed are the goroutines that are neither a handler nor the poller:
	// Run's, the dial or a connection's end, flushers, callback runners.
	fixed int
	// between are handler goroutines outside serveOne: passing their slot
	// to the request held while all were taken, or ending, the slot freed.
	// An ending one never waits, but the scheduler may not have run it to
	// its end yet: SECURITY.md does not count it, and neither do the
	// assertions (goleak and the tests' final checks see it gone).
	between int
}

// hostileCountGoroutines samples the library's goroutines. The process's
// poller delivering a message or a connection's end is not counted: it
// serves every outbound connection of the process (SECURITY.md).
func hostileCountGoroutines() hostileCount {
	var c hostileCount
	serving := make(map[string]int)
	for _, g := range hostileGoroutineStacks() {
		if !bytes.Contains(g, []byte("github.com/shellyws/shellyws.(")) {
			continue
		}
		if _, args, ok := bytes.Cut(g, []byte("github.com/shellyws/shellyws.(*peer).serveOne(")); ok {
			// The connection is the receiver, the first argument
			// (traceback marks a value it is unsure of with "?").
			p, _, _ := bytes.Cut(args, []byte(","))
			serving[string(bytes.TrimSuffix(p, []byte("?")))]++
			continue
		}
		switch {
		case bytes.Contains(g, []byte("github.com/shellyws/shellyws.(*peer).serve(")):
			c.between++
		case bytes.Contains(g, []byte("/internal/evws.(*Poller).loop(")):
		default:
			c.fixed++
		}
	}
	for _, n := range serving {
		c.serving = max(c.serving, n)
	}
	return c
}

// hostileCountPeaks records the peak of each of hostileCountGoroutines's
// figures, sampled every ms until Stop.
type hostileCountPeaks struct {
	stop chan struct{}
	done chan struct{}
	peak hostileCount // the sampler's until done is closed
}

func hostileSampleCounts() *hostileCountPeaks {
	p := &hostileCountPeaks{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			c := hostileCountGoroutines()
			p.peak.serving = max(p.peak.serving, c.serving)
			p.peak.fixed = max(p.peak.fixed, c.fixed)
			p.peak.between = max(p.peak.between, c.between)
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends sampling and returns the peaks.
func (p *hostileCountPeaks) Stop() hostileCount {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return p.peak
}

// hostileLiveHeap returns the bytes of live and not yet swept heap objects.
func hostileLiveHeap() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// hostileBaselineHeap returns the live heap after a full collection.
func hostileBaselineHeap() uint64 {
	runtime.GC()
	return hostileLiveHeap()
}

// hostilePeakSampler records the largest value f returns while it runs.
type hostilePeakSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Uint64
}

func hostileSamplePeak(every time.Duration, f func() uint64) *hostilePeakSampler {
	p := &hostilePeakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v := f(); v > p.peak.Load() {
				p.peak.Store(v)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends sampling and returns the peak.
func (p *hostilePeakSampler) Stop() uint64 {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return p.peak.Load()
}

// hostileConnTimes records the lifetime of each connection through the component's
// callbacks, with the cause of each loss.
type hostileConnTimes struct {
	mu       sync.Mutex
	up       time.Time
	lifetime []time.Duration
	causes   []error
	lost     chan struct{} // one value per lost connection, never blocks
}

func newHostileConnTimes() *hostileConnTimes {
	return &hostileConnTimes{lost: make(chan struct{}, 1<<16)}
}

func (ct *hostileConnTimes) options() []shellyws.Option {
	return []shellyws.Option{
		shellyws.WithOnConnect(func() { ct.mu.Lock(); ct.up = time.Now(); ct.mu.Unlock() }),
		shellyws.WithOnDisconnect(func(err error) {
			ct.mu.Lock()
			ct.lifetime = append(ct.lifetime, time.Since(ct.up))
			ct.causes = append(ct.causes, err)
			ct.mu.Unlock()
			select {
			case ct.lost <- struct{}{}:
			default:
			}
		}),
	}
}

// waitLost waits for n lost connections and returns their lifetimes and causes.
func (ct *hostileConnTimes) waitLost(t *testing.T, n int) ([]time.Duration, []error) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for range n {
		select {
		case <-ct.lost:
		case <-timeout:
			t.Fatalf("fewer than %d connections were lost within %v", n, waitTimeout)
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return append([]time.Duration(nil), ct.lifetime...), append([]error(nil), ct.causes...)
}

func hostileConnOp(err error) string {
	var ce *shellyws.ConnError
	if errors.As(err, &ce) {
		return ce.Op
	}
	return fmt.Sprintf("not a ConnError: %v", err)
}

// hostileHandlerGroup tracks the handlers of a test server that outlive their
// request (hijacked websockets), so cleanup can wait for them without racing
// a handler that starts while it waits.
type hostileHandlerGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter registers a handler; false means the test is over and it must return.
func (g *hostileHandlerGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *hostileHandlerGroup) leave() { g.wg.Done() }

func (g *hostileHandlerGroup) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// --- a raw websocket server, for what coder/websocket would never send ---

// hostileRawServer accepts TCP connections on 127.0.0.1 and runs handle for each.
// Close (registered with t.Cleanup) closes the listener and every connection
// and waits for the handlers.
type hostileRawServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	quit  chan struct{}
	once  sync.Once
}

func newHostileRawServer(t testing.TB, handle func(c net.Conn, quit <-chan struct{})) *hostileRawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &hostileRawServer{ln: ln, conns: make(map[net.Conn]struct{}), quit: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			select {
			case <-s.quit:
				s.mu.Unlock()
				c.Close()
				return
			default:
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c, s.quit)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *hostileRawServer) Addr() string { return s.ln.Addr().String() }

func (s *hostileRawServer) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.quit)
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func hostileURL(scheme, addr string) string { return scheme + "://" + addr + "/" }

// --- the tests ---

// TestHostileHandshakeNeverFinishes: a server that accepts TCP (or not even
// that) and never completes the handshake holds each attempt for the dial
// timeout, no longer, and the device keeps retrying.
func TestHostileHandshakeNeverFinishes(t *testing.T) {
	type attempt = chan time.Duration
	silentTCP := func(t *testing.T, attempts attempt) string {
		srv := newHostileRawServer(t, func(c net.Conn, _ <-chan struct{}) {
			start := time.Now()
			io.Copy(io.Discard, c) // read the request, answer nothing, until the device hangs up
			attempts <- time.Since(start)
		})
		return srv.Addr()
	}
	silentHTTP := func(t *testing.T, attempts attempt, tls bool) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			<-r.Context().Done() // the device hung up
			attempts <- time.Since(start)
		}))
		srv.Config.ErrorLog = hostileDiscardLog()
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	for _, tc := range []struct {
		name   string
		scheme string
		start  func(t *testing.T, attempts attempt) string
		dial   func(attempts attempt) func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{name: "TCP connect hangs", scheme: "ws",
			start: func(t *testing.T, attempts attempt) string { return "127.0.0.1:9" },
			dial: func(attempts attempt) func(ctx context.Context, network, addr string) (net.Conn, error) {
				return func(ctx context.Context, network, addr string) (net.Conn, error) {
					start := time.Now()
					<-ctx.Done()
					attempts <- time.Since(start)
					return nil, ctx.Err()
				}
			}},
		{name: "TCP accepted, no HTTP answer", scheme: "ws", start: silentTCP},
		{name: "TCP accepted, no TLS handshake", scheme: "wss", start: silentTCP},
		{name: "HTTP request never answered", scheme: "ws",
			start: func(t *testing.T, a attempt) string { return silentHTTP(t, a, false) }},
		{name: "TLS done, HTTP request never answered", scheme: "wss",
			start: func(t *testing.T, a attempt) string { return silentHTTP(t, a, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := make(attempt, 64)
			addr := tc.start(t, attempts)
			cfg := enabledConfig(hostileURL(tc.scheme, addr))
			cfg.SSLCA = sslCA(shellyws.SSLCAInsecure) // only the timeout may stop it
			opts := []shellyws.Option{shellyws.WithDialTimeout(hostileDialTimeout)}
			if tc.dial != nil {
				opts = append(opts, shellyws.WithDialContext(tc.dial(attempts)))
			}
			dev := startDevice(t, cfg, opts...)
			for i := range 3 {
				select {
				case d := <-attempts:
					assert.GreaterOrEqual(t, d, hostileDialTimeout/2, "attempt %d ended before the dial timeout", i)
					assert.LessOrEqual(t, d, hostileDialTimeout+hostileMargin, "attempt %d outlived the dial timeout", i)
				case <-time.After(waitTimeout):
					t.Fatalf("attempt %d never ended", i)
				}
			}
			assert.GreaterOrEqual(t, dev.Stats().DialFailures, uint64(2))
			assert.Zero(t, dev.Stats().Connects)
			assert.Equal(t, "dial", hostileConnOp(dev.LastError()))
		})
	}
}

// TestHostileServerNeverReads: a server that completes the handshake and then
// never reads answers no ping and takes no data; the device notices with its
// ping or write timeout, redials, keeps its queue within bound and its heap
// and goroutines flat.
func TestHostileServerNeverReads(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ping     bool
		payload  int // bytes of each notification pushed during the test
		wantOp   string
		lifetime time.Duration
	}{
		{name: "pings unanswered", ping: true, payload: 64, wantOp: "ping",
			lifetime: hostilePingInterval + hostilePingTimeout + hostileMargin},
		// Without pings only the write timeout can notice: big notifications
		// fill the socket buffers until a write blocks.
		{name: "writes stall", ping: false, payload: 256 << 10, wantOp: "write",
			lifetime: hostileWriteTimeout + 2*hostileMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var handlers hostileHandlerGroup
			var accepted atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{shellyws.Subprotocol}})
				if err != nil {
					return
				}
				if !handlers.enter() {
					c.CloseNow()
					return
				}
				defer handlers.leave()
				accepted.Add(1)
				<-release
				c.CloseNow()
			}))
			t.Cleanup(func() { close(release); handlers.closeAndWait(); srv.Close() })

			const queueSize = 25
			ct := newHostileConnTimes()
			opts := append(ct.options(),
				shellyws.WithWriteTimeout(hostileWriteTimeout),
				shellyws.WithQueueSize(queueSize))
			if tc.ping {
				opts = append(opts, shellyws.WithPing(hostilePingInterval, hostilePingTimeout))
			} else {
				opts = append(opts, shellyws.WithPing(0, 0))
			}
			baseG := hostileCountGoroutines()
			baseHeap := hostileBaselineHeap()
			heap := hostileSamplePeak(5*time.Millisecond, hostileLiveHeap)
			gor := hostileSampleCounts()
			dev := startDevice(t, enabledConfig("ws"+strings.TrimPrefix(srv.URL, "http")), opts...)

			// Push notifications the whole time, checking the queue bound.
			stop := make(chan struct{})
			pushed := make(chan int, 1)
			go func() {
				n := 0
				blob := strings.Repeat("x", tc.payload)
				defer func() { pushed <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = dev.NotifyStatus(map[string]any{"blob": blob, "seq": n})
					n++
					if q := dev.Stats().Queued; q > queueSize {
						t.Errorf("queue holds %d notifications, bound %d", q, queueSize)
						return
					}
					time.Sleep(time.Millisecond) // a device's status changes at a finite rate
				}
			}()
			lifetimes, causes := ct.waitLost(t, 3)
			close(stop)
			n := <-pushed
			peakHeap, peakG := heap.Stop(), gor.Stop()

			for i, err := range causes {
				assert.Equal(t, tc.wantOp, hostileConnOp(err), "loss %d: %v", i, err)
				assert.LessOrEqual(t, lifetimes[i], tc.lifetime, "connection %d lived too long", i)
			}
			assert.GreaterOrEqual(t, accepted.Load(), int32(3), "the device redials")
			st := dev.Stats()
			assert.LessOrEqual(t, st.Queued, queueSize)
			assert.LessOrEqual(t, peakG.fixed, baseG.fixed+hostileDeviceFixedGoroutines, "goroutines of one device without requests")
			assert.Zero(t, peakG.serving+peakG.between, "no handler: the server sends no request")
			assert.LessOrEqual(t, peakHeap, baseHeap+hostileHeapSlack, "heap peak %d MiB over a %d MiB baseline",
				(peakHeap-baseHeap)>>20, baseHeap>>20)
			t.Logf("%d notifications of %d B pushed, %d dropped; connections lived %v; peak goroutines besides handlers %d (baseline %d), peak heap +%.1f MiB",
				n, tc.payload, st.Dropped, lifetimes, peakG.fixed, baseG.fixed, float64(int64(peakHeap)-int64(baseHeap))/(1<<20))
		})
	}
}

// TestHostileShutdownIsPrompt: Run returns promptly after its context ends
// even when the server reads nothing: neither a write stalled on full socket
// buffers nor a close frame the server never answers may hold it longer than
// hostileShutdownBound: the library cuts the connection off closeGrace (1 s) after
// the context ends.
func TestHostileShutdownIsPrompt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall bool // fill the socket buffers first
	}{
		{name: "close frame never answered"},
		{name: "write stalled", stall: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var handlers hostileHandlerGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				if !handlers.enter() {
					c.CloseNow()
					return
				}
				defer handlers.leave()
				<-release
				c.CloseNow()
			}))
			t.Cleanup(func() { close(release); handlers.closeAndWait(); srv.Close() })

			cfg := enabledConfig("ws" + strings.TrimPrefix(srv.URL, "http"))
			dev, err := shellyws.New(testDeviceID, append(fastOptions(),
				shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)),
				shellyws.WithPing(0, 0),
				// Longer than hostileShutdownBound: shutdown, not the write timeout, must end a stalled write.
				shellyws.WithWriteTimeout(hostileShutdownBound+2*time.Second),
				shellyws.WithQueueSize(4))...)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			var runErr error
			returned := make(chan struct{})
			go func() { runErr = dev.Run(ctx); close(returned) }()
			defer func() {
				cancel()
				select {
				case <-returned:
				case <-time.After(2 * waitTimeout):
					t.Error("Run never returned")
				}
			}()
			require.NoError(t, dev.AwaitConnected(testCtx(t)))
			if tc.stall {
				// Fill the socket buffers until the writer blocks: the queue stops draining.
				blob := strings.Repeat("y", 1<<20)
				deadline := time.Now().Add(waitTimeout)
				for dev.Stats().Dropped == 0 {
					require.True(t, time.Now().Before(deadline), "the writer never blocked")
					_ = dev.NotifyStatus(map[string]any{"blob": blob})
					time.Sleep(time.Millisecond) // pacing, not synchronisation
				}
			}
			start := time.Now()
			cancel()
			select {
			case <-returned:
				require.NoError(t, runErr)
				took := time.Since(start)
				t.Logf("Run returned %v after its context ended", took.Round(time.Millisecond))
				assert.LessOrEqual(t, took, hostileShutdownBound, "Run's shutdown against a server that reads nothing")
			case <-time.After(2 * waitTimeout):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
}

// hostileShutdownBound is how long Run may take to return after its context ends,
// whatever the server does: a second for the close handshake plus margin.
const hostileShutdownBound = time.Second + hostileMargin

// TestHostileGiantFrame: frames announcing more than the read limit are
// refused with 1009 (or 1002 for a control frame) without the device
// allocating what they announce, and the device redials.
func TestHostileGiantFrame(t *testing.T) {
	chunk := bytes.Repeat([]byte(" "), 64<<10)
	// stream writes payload bytes until the device hangs up or max is sent.
	stream := func(c net.Conn, max int) {
		for sent := 0; sent < max; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name      string
		attack    func(c net.Conn)
		wantClose int    // close code the device sends, or 0 for none
		wantOp    string // op of the lost connection
	}{
		{name: "1 GiB text frame", wantClose: int(websocket.StatusMessageTooBig), wantOp: "read",
			attack: func(c net.Conn) {
				c.Write(testkit.FrameHeader(true, testkit.OpText, 1<<30))
				stream(c, 16<<20)
			}},
		// The header alone is refused: nothing waits for a payload that is
		// over the limit anyway (coder/websocket waited, and the keepalive
		// noticed the silence).
		{name: "1 GiB header then silence", wantClose: int(websocket.StatusMessageTooBig), wantOp: "read",
			attack: func(c net.Conn) {
				c.Write(append(testkit.FrameHeader(true, testkit.OpText, 1<<30), `{"id":1,`...))
			}},
		{name: "fragments past the limit", wantClose: int(websocket.StatusMessageTooBig), wantOp: "read",
			attack: func(c net.Conn) {
				c.Write(testkit.FrameHeader(false, testkit.OpText, uint64(len(chunk))))
				c.Write(chunk)
				for range 64 {
					if _, err := c.Write(testkit.FrameHeader(false, testkit.OpContinuation, uint64(len(chunk)))); err != nil {
						return
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}},
		{name: "1 GiB ping", wantClose: int(websocket.StatusProtocolError), wantOp: "read",
			attack: func(c net.Conn) {
				c.Write(testkit.FrameHeader(true, testkit.OpPing, 1<<30))
				stream(c, 1<<20)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closeCodes := make(chan int, 64)
			srv := newHostileRawServer(t, func(c net.Conn, quit <-chan struct{}) {
				br, err := testkit.AcceptUpgrade(c, nil)
				if err != nil {
					return
				}
				if op, _, err := testkit.ReadClientFrame(br); err != nil || op != testkit.OpText {
					return // the NotifyFullStatus
				}
				got := make(chan int, 1)
				go func() { got <- testkit.ReadCloseCode(br) }()
				tc.attack(c)
				select {
				case code := <-got:
					closeCodes <- code
				case <-quit:
					c.Close()
					<-got
				}
			})
			ct := newHostileConnTimes()
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			// The raw server answers no ping: none may end these connections.
			startDevice(t, enabledConfig(hostileURL("ws", srv.Addr())), append(ct.options(), shellyws.WithPing(0, 0))...)
			lifetimes, causes := ct.waitLost(t, 3)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)

			for i, err := range causes {
				assert.Equal(t, tc.wantOp, hostileConnOp(err), "loss %d: %v", i, err)
				assert.LessOrEqual(t, lifetimes[i], hostilePingInterval+hostilePingTimeout+hostileMargin, "connection %d", i)
			}
			if tc.wantClose != 0 {
				for i := range 2 {
					select {
					case code := <-closeCodes:
						assert.Equal(t, tc.wantClose, code, "close code of connection %d", i)
					case <-time.After(waitTimeout):
						t.Fatal("the server saw no close")
					}
				}
			}
			if tc.wantClose == int(websocket.StatusMessageTooBig) {
				assert.ErrorIs(t, causes[0], websocket.ErrMessageTooBig)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			assert.Less(t, alloc, uint64(hostileAllocBudget), "allocated %d MiB over 3 giant frames", alloc>>20)
			t.Logf("3 connections, %.1f MiB allocated in total, lifetimes %v", float64(alloc)/(1<<20), lifetimes)
		})
	}
}

// hostileSwitchDialer dials whatever address it currently points at, so a test can
// move a device from one server to another under the same URL.
type hostileSwitchDialer struct{ target atomic.Value }

func (d *hostileSwitchDialer) set(addr string) { d.target.Store(addr) }

func (d *hostileSwitchDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var dl net.Dialer
	return dl.DialContext(ctx, network, d.target.Load().(string))
}

// TestHostileRequestFlood: a server writes 100,000 requests and never reads
// the answers. The device dispatches at most maxInFlight at once, stops
// reading when they are taken (so the flood backs up into the server), drops
// the connection when its answers can no longer be written, keeps its own
// notifications, and another device in the process is unaffected. Afterwards
// it connects to a good server and works.
func TestHostileRequestFlood(t *testing.T) {
	const (
		requests    = 100_000
		maxInFlight = defaultMaxInFlight
		queueSize   = 25
	)
	var written atomic.Int64 // by the first flood connection
	var floodOnce sync.Once
	floodDone := make(chan struct{})
	flood := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		n := 0
		defer floodOnce.Do(func() { written.Store(int64(n)); close(floodDone) })
		for i := range requests {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":%d,"src":"flood","method":"Ws.GetStatus"}`, i))
			cancel()
			if err != nil {
				return
			}
			n++
		}
	}))
	t.Cleanup(flood.Close)
	good := shellywstest.NewServer(t)

	// A bystander device on the good server, which must not notice the flood.
	bystander := startDevice(t, enabledConfig(good.URL()))
	ctx := testCtx(t)
	byConn, err := good.Accept(ctx)
	require.NoError(t, err)
	_, err = byConn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, bystander.AwaitConnected(ctx))

	var dialer hostileSwitchDialer
	dialer.set(flood.Listener.Addr().String())
	dev, err := shellyws.New("shellyplus1pm-aabbccddeeff", append(fastOptions(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig("ws://flood.invalid/"))),
		shellyws.WithDialContext(dialer.dial),
		shellyws.WithWriteTimeout(hostileWriteTimeout),
		shellyws.WithPing(hostilePingInterval, hostilePingTimeout),
		shellyws.WithMaxInFlight(maxInFlight),
		shellyws.WithQueueSize(queueSize))...)
	require.NoError(t, err)

	baseG := hostileCountGoroutines()
	baseHeap := hostileBaselineHeap()
	heap := hostileSamplePeak(5*time.Millisecond, hostileLiveHeap)
	gor := hostileSampleCounts()
	runDevice(t, dev)

	// While the flood runs: the device's notifications queue within bound
	// and the bystander answers promptly.
	var slowest time.Duration
	for i := 0; ; i++ {
		select {
		case <-floodDone:
		default:
			require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"seq": i}}))
			assert.LessOrEqual(t, dev.Stats().Queued, queueSize)
			start := time.Now()
			var st shellyws.Status
			callCtx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			err := byConn.Call(callCtx, "Ws.GetStatus", nil, &st)
			cancel()
			require.NoError(t, err)
			assert.True(t, st.Connected)
			slowest = max(slowest, time.Since(start))
			continue
		}
		break
	}
	peakHeap, peakG := heap.Stop(), gor.Stop()
	st := dev.Stats()
	t.Logf("flood: %d of %d requests written before the device dropped the connection; peak requests served at once %d; peak goroutines besides handlers %d (baseline %d, 2 devices), handlers between requests %d; peak heap +%.1f MiB; bystander's slowest call %v; device %+v",
		written.Load(), requests, peakG.serving, peakG.fixed, baseG.fixed, peakG.between, float64(int64(peakHeap)-int64(baseHeap))/(1<<20), slowest, st)
	assert.Less(t, written.Load(), int64(requests), "the device pushed back: the server could not write it all")
	// The bystander's fixed goroutines are in the baseline; this device adds
	// its fixed ones, and each connection serves at most maxInFlight
	// requests at once.
	assert.LessOrEqual(t, peakG.fixed, baseG.fixed+hostileDeviceFixedGoroutines)
	assert.LessOrEqual(t, peakG.serving, maxInFlight)
	assert.LessOrEqual(t, peakHeap, baseHeap+hostileHeapSlack)
	assert.Less(t, slowest, time.Second, "the bystander's calls stay fast")
	assert.LessOrEqual(t, st.Queued, queueSize)

	// The device redials (a flood connection it may be on now is dropped
	// by the ping) and lands on the good server, where it works. The flood
	// may have taken most of the first context on a loaded machine.
	ctx = testCtx(t)
	dialer.set(good.Addr())
	conn, err := good.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, dev.AwaitConnected(ctx))
	var status shellyws.Status
	require.NoError(t, conn.Call(ctx, "ws.getstatus", nil, &status))
	assert.True(t, status.Connected)
	// Its latest notifications survived the flood, within the queue's bound.
	require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"seq": "last"}}))
	for {
		d, err := conn.ExpectStatus(ctx)
		require.NoError(t, err)
		if string(d.Changes["switch:0"]) == `{"seq":"last"}` {
			break
		}
	}
	assert.Eventually(t, func() bool {
		c := hostileCountGoroutines()
		return c.serving+c.between == 0 && c.fixed <= baseG.fixed+hostileDeviceFixedGoroutines
	}, waitTimeout, time.Millisecond, "handlers of the flood connection all ended")
}

// TestHostileFasterThanDeviceAnswers: a server sends requests as fast as it
// can while reading the answers. Slow handlers hold the in-flight limit, the
// reader pushes back, every request with an id is answered exactly once and
// none without one, the connection stays up, and the device's notifications
// go out in between, none dropped.
func TestHostileFasterThanDeviceAnswers(t *testing.T) {
	const (
		maxInFlight = 4
		requests    = 10_000 // one in ten without id
		handlerTime = 200 * time.Microsecond
	)
	var handling, peakHandling atomic.Int32
	mux := shellyws.NewMux()
	mux.HandleFunc("Slow.Op", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		n := handling.Add(1)
		defer handling.Add(-1)
		for {
			p := peakHandling.Load()
			if n <= p || peakHandling.CompareAndSwap(p, n) {
				break
			}
		}
		work := time.NewTimer(handlerTime) // simulated work, not synchronisation
		defer work.Stop()
		select {
		case <-work.C:
		case <-ctx.Done():
		}
		return true, nil
	})

	type result struct {
		sent, sentNoID, answered, unexpected int
		answeredWhenSent                     int // answers seen when the last request was written
		notifications                        []int
		err                                  error
	}
	results := make(chan result, 1)
	finish := make(chan struct{}) // closed when the test has checked the connection
	var finishOnce sync.Once
	closeFinish := func() { finishOnce.Do(func() { close(finish) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		var (
			res         result
			mu          sync.Mutex
			ids         = make(map[string]bool)
			sendingDone bool
			answered    = make(chan struct{})
			once        sync.Once
			readErr     = make(chan error, 1)
			readerDone  = make(chan struct{})
		)
		defer func() { c.CloseNow(); <-readerDone }()
		go func() {
			defer close(readerDone)
			for {
				_, data, err := c.Read(context.Background())
				if err != nil {
					readErr <- err
					return
				}
				var f struct {
					ID     json.RawMessage `json:"id"`
					Method string          `json:"method"`
					Params struct {
						Switch struct {
							Seq int `json:"seq"`
						} `json:"switch:0"`
					} `json:"params"`
				}
				if err := json.Unmarshal(data, &f); err != nil {
					readErr <- err
					return
				}
				mu.Lock()
				switch {
				case f.ID == nil && f.Method == methodNotifyStatus:
					res.notifications = append(res.notifications, f.Params.Switch.Seq)
				case f.ID == nil:
				case ids[string(f.ID)]:
					delete(ids, string(f.ID))
					res.answered++
				default:
					res.unexpected++
				}
				if sendingDone && len(ids) == 0 {
					once.Do(func() { close(answered) })
				}
				mu.Unlock()
			}
		}()
		for i := range requests {
			noID := i%10 == 9
			var frame []byte
			if noID {
				frame = fmt.Appendf(nil, `{"src":"fast","method":"Slow.Op","params":{"n":%d}}`, i)
			} else {
				id := fmt.Sprintf(`"r%d"`, i)
				mu.Lock()
				ids[id] = true
				mu.Unlock()
				frame = fmt.Appendf(nil, `{"id":%s,"src":"fast","method":"Slow.Op"}`, id)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			err := c.Write(ctx, websocket.MessageText, frame)
			cancel()
			mu.Lock()
			if err != nil {
				res.err = err
				mu.Unlock()
				break
			}
			if noID {
				res.sentNoID++
			} else {
				res.sent++
			}
			mu.Unlock()
		}
		mu.Lock()
		sendingDone = true
		res.answeredWhenSent = res.answered
		if len(ids) == 0 {
			once.Do(func() { close(answered) })
		}
		mu.Unlock()
		var failure error
		select {
		case <-answered:
		case err := <-readErr:
			failure = err
		case <-time.After(2 * waitTimeout):
			mu.Lock()
			missing := make([]string, 0, len(ids))
			for id := range ids {
				missing = append(missing, id)
			}
			mu.Unlock()
			failure = fmt.Errorf("%d answers missing, e.g. %v", len(missing), missing[:min(len(missing), 10)])
		}
		mu.Lock()
		if res.err == nil {
			res.err = failure
		}
		res.notifications = append([]int(nil), res.notifications...)
		results <- res
		mu.Unlock()
		<-finish
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(closeFinish)

	baseG := hostileCountGoroutines()
	gor := hostileSampleCounts()
	dev := startDevice(t, enabledConfig("ws"+strings.TrimPrefix(srv.URL, "http")),
		shellyws.WithDispatcher(mux), shellyws.WithMaxInFlight(maxInFlight))
	require.NoError(t, dev.AwaitConnected(testCtx(t)))
	var notified int
	var res result
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case res = <-results:
			break wait
		case <-tick.C:
			require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"seq": notified}}))
			notified++
		case <-time.After(3 * waitTimeout):
			t.Fatal("the server never finished")
		}
	}
	peakG := gor.Stop()
	require.NoError(t, res.err, "%d requests with id sent, %d answered", res.sent, res.answered)
	t.Logf("%d requests with id and %d without, %d answered (%d when the last was written); peak concurrent handlers %d (%d goroutines serving); peak goroutines besides handlers %d (baseline %d), handlers between requests %d; %d notifications sent, %d seen",
		res.sent, res.sentNoID, res.answered, res.answeredWhenSent, peakHandling.Load(), peakG.serving, peakG.fixed, baseG.fixed, peakG.between, notified, len(res.notifications))
	assert.Less(t, res.answeredWhenSent, res.sent/2, "the server outpaced the device")
	assert.Equal(t, res.sent, res.answered, "every request with an id answered once")
	assert.Zero(t, res.unexpected, "no answer to a request without id, none twice")
	assert.LessOrEqual(t, peakHandling.Load(), int32(maxInFlight))
	assert.LessOrEqual(t, peakG.serving, maxInFlight)
	assert.LessOrEqual(t, peakG.fixed, baseG.fixed+hostileDeviceFixedGoroutines)
	st := dev.Stats()
	assert.Zero(t, st.Disconnects, "a fast server is not a reason to drop it")
	assert.Zero(t, st.Dropped, "notifications keep flowing between the answers")
	closeFinish()
	// The ones sent while the server was still reading arrived, in order.
	for i, seq := range res.notifications {
		require.Equal(t, i, seq, "notifications in order, none lost")
	}
	assert.Greater(t, len(res.notifications), notified/2)
}

func hostileDiscardLog() *log.Logger { return log.New(io.Discard, "", 0) }
