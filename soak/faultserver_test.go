package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// faultConfig shapes the faults; the soak test derives it from its flags.
type faultConfig struct {
	seed uint64
	// lifetime bounds how long a connection runs before its fault.
	minLife, maxLife time.Duration
	// request bounds the pause between the server's requests.
	minRequest, maxRequest time.Duration
	// stallHold is how long a stalled connection is held before the server
	// gives up on it; the device must have dropped it by then.
	stallHold time.Duration
	// oversized is the size of the frame that must exceed the device's
	// read limit.
	oversized int
	// restartEvery is the least time between two restarts.
	restartEvery time.Duration
	// answerWait bounds the wait for outstanding answers before a graceful
	// close.
	answerWait time.Duration
}

var (
	closeCodes  = []websocket.StatusCode{1000, 1001, 1008, 1011, 1013, 4001, 4002, 4003, 4100, 4101}
	refuseCodes = []int{400, 401, 403, 404, 429, 500, 502, 503}
	// requests the server sends, as real servers do; none changes the
	// device's notifications, so the test can account for them.
	requestMethods = []struct{ method, params string }{
		{"Shelly.GetStatus", ""},
		{"shelly.getdeviceinfo", ""},
		{"Shelly.GetConfig", ""},
		{"Sys.GetStatus", ""},
		{"Switch.GetStatus", `,"params":{"id":0}`},
		{"WS.GetStatus", ""},
		{"Ws.GetConfig", ""},
		{"Nope.Nothing", ""}, // answered with 404
		{"Shelly.GetComponents", `,"params":{"dynamic_only":true,"offset":0}`},
	}
)

// faultServer is a loopback outbound-websocket server that misbehaves at
// random while faulty is set, and serves well once calm is closed.
type faultServer struct {
	cfg  faultConfig
	addr string
	hs   *http.Server

	bg       sync.WaitGroup // Serve loops, restarts, handlers
	quit     chan struct{}
	calm     chan struct{}
	faulty   atomic.Bool
	connSeq  atomic.Uint64
	rng      *rand.Rand
	lastRest atomic.Int64 // unix nanos of the last restart
	inRest   atomic.Bool

	mu     sync.Mutex
	ln     net.Listener
	raw    map[string]*stallConn  // every accepted TCP connection, by remote address
	live   map[string]*serverConn // the latest connection of each device, once its first frame arrived
	closed bool

	stats serverStats
	// disconnects returns how many connections a device has lost; set
	// before the devices run.
	disconnects func(id string) uint64
}

// serverStats are the server's counters.
type serverStats struct {
	mu       sync.Mutex
	faults   map[string]int
	received map[string]int // NotifyStatus frames per device

	samples []string // the first unexpected frames, for the failure message

	handshakes, connections, firstFrames, firstFrameBad, noFirstFrame atomic.Int64
	sent, answered, lost, lostGraceful, unexpected, restarts          atomic.Int64
	earlyRequests, oversized1009, stallsUndetected, stallsStale       atomic.Int64
}

func (st *serverStats) fault(kind string) {
	st.mu.Lock()
	st.faults[kind]++
	st.mu.Unlock()
}

func (st *serverStats) unexpectedFrame(why string, data []byte) {
	st.unexpected.Add(1)
	st.mu.Lock()
	if len(st.samples) < 5 {
		st.samples = append(st.samples, fmt.Sprintf("%s: %.300s", why, data))
	}
	st.mu.Unlock()
}

func (st *serverStats) faultSummary() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	kinds := make([]string, 0, len(st.faults))
	for k := range st.faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	total := 0
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, st.faults[k])
		total += st.faults[k]
	}
	return fmt.Sprintf("%d:%s", total, b.String())
}

func newFaultServer(cfg faultConfig) (*faultServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &faultServer{
		cfg:  cfg,
		addr: ln.Addr().String(),
		quit: make(chan struct{}),
		calm: make(chan struct{}),
		rng:  rand.New(rand.NewPCG(cfg.seed, 0x50a4)),
		raw:  make(map[string]*stallConn),
		live: make(map[string]*serverConn),
		stats: serverStats{
			faults:   make(map[string]int),
			received: make(map[string]int),
		},
	}
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          discardLogger(),
	}
	s.faulty.Store(true)
	s.serve(ln)
	return s, nil
}

// URL is what the devices dial; the token is there to be carried verbatim.
func (s *faultServer) URL() string { return "ws://" + s.addr + "/soak?token=t0k3n" }

func (s *faultServer) serve(ln net.Listener) {
	if !s.track() {
		ln.Close()
		return
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		_ = s.hs.Serve(&stallListener{Listener: ln, s: s})
	}()
}

// Calm stops the faults: stalled connections are given up at once, and
// from now on the server serves well.
func (s *faultServer) Calm() {
	s.faulty.Store(false)
	close(s.calm)
}

// Close stops the server and waits for everything it started.
func (s *faultServer) Close() {
	s.mu.Lock()
	s.closed = true
	close(s.quit)
	if s.ln != nil {
		s.ln.Close()
	}
	conns := make([]*stallConn, 0, len(s.raw))
	for _, c := range s.raw {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close() // its onClose takes s.mu
	}
	s.hs.Close()
	s.bg.Wait()
}

// rand returns a generator for one connection, seeded from the run's seed
// and the connection's number, so a seed replays the same fault choices.
func (s *faultServer) connRand() *rand.Rand {
	return rand.New(rand.NewPCG(s.cfg.seed, s.connSeq.Add(1)))
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// restart closes the listener and every connection, stays down for down,
// and listens again on the same address.
func (s *faultServer) restart(down time.Duration) {
	defer s.inRest.Store(false)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	ln := s.ln
	s.ln = nil
	conns := make([]*stallConn, 0, len(s.raw))
	for _, c := range s.raw {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	ln.Close()
	for _, c := range conns {
		c.Close()
	}
	s.stats.restarts.Add(1)
	t := time.NewTimer(down)
	select {
	case <-t.C:
	case <-s.calm:
		t.Stop()
	case <-s.quit:
		t.Stop()
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		nl, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				nl.Close()
				return
			}
			s.serve(nl)
			return
		}
		if time.Now().After(deadline) {
			panic(fmt.Sprintf("soak: cannot listen again on %s: %v", s.addr, err))
		}
		select {
		case <-s.quit:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// track counts a goroutine Close waits for; false means the server is
// closed and the goroutine must not start.
func (s *faultServer) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.bg.Add(1)
	return true
}

func (s *faultServer) handle(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		return
	}
	defer s.bg.Done()
	s.stats.handshakes.Add(1)
	rng := s.connRand()
	if s.faulty.Load() && rng.Float64() < 0.15 {
		code := refuseCodes[rng.IntN(len(refuseCodes))]
		s.stats.fault("refuse_" + strconv.Itoa(code))
		http.Error(w, "refused by the soak", code)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
	if err != nil {
		return
	}
	s.mu.Lock()
	raw := s.raw[r.RemoteAddr]
	s.mu.Unlock()
	if raw == nil {
		ws.CloseNow()
		return
	}
	ws.SetReadLimit(4 << 20)
	s.stats.connections.Add(1)
	c := &serverConn{
		s:       s,
		ws:      ws,
		raw:     raw,
		rng:     rng,
		pending: make(map[string]chan json.RawMessage),
		first:   make(chan error, 1),
		done:    make(chan struct{}),
	}
	c.serve()
}

// Live returns the latest connection of each device.
func (s *faultServer) Live() map[string]*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*serverConn, len(s.live))
	for id, c := range s.live {
		select {
		case <-c.done:
		default:
			out[id] = c
		}
	}
	return out
}

// serverConn is one device connection on the server side.
type serverConn struct {
	s   *faultServer
	ws  *websocket.Conn
	raw *stallConn
	rng *rand.Rand

	mu      sync.Mutex
	dev     string
	lostAt  uint64 // the device's Disconnects when its first frame arrived
	nextID  int
	pending map[string]chan json.RawMessage // id -> where the answer goes (nil: counted only)
	first   chan error
	done    chan struct{} // the reader has exited
}

type deviceFrame struct {
	ID     json.RawMessage `json:"id"`
	Src    string          `json:"src"`
	Method string          `json:"method"`
	Params struct {
		Sys struct {
			MAC string `json:"mac"`
		} `json:"sys"`
	} `json:"params"`
}

func (c *serverConn) readLoop() {
	defer close(c.done)
	firstSeen := false
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			if !firstSeen {
				c.first <- err
			}
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				c.s.stats.oversized1009.Add(1)
			}
			c.mu.Lock()
			c.s.stats.lost.Add(int64(len(c.pending)))
			c.pending = nil
			c.mu.Unlock()
			return
		}
		var f deviceFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.s.stats.unexpectedFrame("not a frame: "+err.Error(), data)
			continue
		}
		if !firstSeen {
			firstSeen = true
			c.s.stats.firstFrames.Add(1)
			if f.Method != "NotifyFullStatus" || f.ID != nil || f.Params.Sys.MAC == "" || f.Src == "" {
				c.s.stats.firstFrameBad.Add(1)
			}
			// The device counts a lost connection before it dials the next,
			// so while this one is its current connection the count stays.
			lostAt := c.s.disconnects(f.Src)
			c.mu.Lock()
			c.dev, c.lostAt = f.Src, lostAt
			c.mu.Unlock()
			c.first <- nil
			continue
		}
		switch {
		case f.ID != nil:
			c.mu.Lock()
			ch, ok := c.pending[string(f.ID)]
			delete(c.pending, string(f.ID))
			c.mu.Unlock()
			if !ok {
				c.s.stats.unexpectedFrame("an answer nobody asked for, or a second one", data)
				continue
			}
			c.s.stats.answered.Add(1)
			if ch != nil {
				ch <- data
			}
		case f.Method == "NotifyStatus":
			c.s.stats.mu.Lock()
			c.s.stats.received[f.Src]++
			c.s.stats.mu.Unlock()
		case f.Method == "NotifyFullStatus":
			c.s.stats.firstFrameBad.Add(1) // only ever first
		case f.Method != "":
		default:
			c.s.stats.unexpectedFrame("neither answer nor notification", data)
		}
	}
}

// send writes a request; with answer non-nil the response is delivered there.
func (c *serverConn) send(method, params string, answer chan json.RawMessage) error {
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.nextID++
	id := strconv.Itoa(c.nextID)
	c.pending[id] = answer
	c.mu.Unlock()
	frame := []byte(`{"id":` + id + `,"src":"soak","method":"` + method + `"` + params + `}`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := c.ws.Write(ctx, websocket.MessageText, frame)
	cancel()
	if err != nil {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id) // never sent
		} else {
			c.s.stats.lost.Add(-1) // the reader counted it lost, but it never went out
		}
		c.mu.Unlock()
		return err
	}
	c.s.stats.sent.Add(1)
	return nil
}

func (c *serverConn) outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

func (c *serverConn) serve() {
	go c.readLoop()
	defer func() {
		c.ws.CloseNow()
		<-c.done
		c.s.mu.Lock()
		if c.s.live[c.dev] == c {
			delete(c.s.live, c.dev)
		}
		c.s.mu.Unlock()
	}()
	if c.s.faulty.Load() && c.rng.Float64() < 0.2 {
		// A request the instant the handshake finished, as the vendor's
		// sample server sends: the full status must still come first.
		m := requestMethods[c.rng.IntN(len(requestMethods))]
		if c.send(m.method, m.params, nil) == nil {
			c.s.stats.earlyRequests.Add(1)
		}
	}
	select {
	case err := <-c.first:
		if err != nil {
			c.s.stats.noFirstFrame.Add(1)
			return
		}
	case <-time.After(10 * time.Second):
		c.s.stats.noFirstFrame.Add(1)
		return
	}
	c.s.mu.Lock()
	c.s.live[c.dev] = c
	c.s.mu.Unlock()

	for {
		if !c.s.faulty.Load() {
			select {
			case <-c.done:
			case <-c.s.quit:
			}
			return
		}
		end := time.NewTimer(between(c.rng, c.s.cfg.minLife, c.s.cfg.maxLife))
	run:
		for {
			next := time.NewTimer(between(c.rng, c.s.cfg.minRequest, c.s.cfg.maxRequest))
			select {
			case <-c.done:
				next.Stop()
				end.Stop()
				return
			case <-c.s.calm:
				next.Stop()
				end.Stop()
				break run
			case <-end.C:
				next.Stop()
				break run
			case <-next.C:
				m := requestMethods[c.rng.IntN(len(requestMethods))]
				if c.rng.IntN(8) == 0 {
					c.sendRaw([]byte(`{"src":"soak","method":"` + m.method + `"` + m.params + `}`)) // no id: never answered
				} else {
					_ = c.send(m.method, m.params, nil)
				}
			}
		}
		if !c.s.faulty.Load() {
			continue
		}
		if c.fault() {
			return
		}
	}
}

func (c *serverConn) sendRaw(frame []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = c.ws.Write(ctx, websocket.MessageText, frame)
	cancel()
}

// fault plays one fault and reports whether it ended the connection.
func (c *serverConn) fault() (ended bool) {
	st := &c.s.stats
	switch p := c.rng.IntN(100); {
	case p < 30: // a graceful close with a close code, after every answer
		deadline := time.Now().Add(c.s.cfg.answerWait)
		for c.outstanding() > 0 && time.Now().Before(deadline) {
			select {
			case <-c.done:
			case <-time.After(5 * time.Millisecond):
			}
		}
		if n := c.outstanding(); n > 0 {
			st.lostGraceful.Add(int64(n))
		}
		code := closeCodes[c.rng.IntN(len(closeCodes))]
		st.fault("close_" + strconv.Itoa(int(code)))
		c.ws.Close(code, "soak")
		return true
	case p < 45:
		st.fault("drop")
		c.ws.CloseNow()
		return true
	case p < 65:
		kind := "stall_read"
		if p >= 55 {
			kind = "stall_write"
			c.raw.writeStall.Store(true)
		} else {
			c.raw.readStall.Store(true)
		}
		st.fault(kind)
		c.mu.Lock()
		dev, before := c.dev, c.lostAt
		c.mu.Unlock()
		if c.s.disconnects(dev) != before {
			// The device already left this connection (the server had
			// not noticed yet): there is nothing to detect.
			st.stallsStale.Add(1)
			return true
		}
		deadline := time.Now().Add(c.s.cfg.stallHold)
		for c.s.disconnects(dev) == before {
			if time.Now().After(deadline) {
				st.stallsUndetected.Add(1)
				return true
			}
			select {
			case <-c.s.calm:
				return true
			case <-time.After(20 * time.Millisecond):
			}
		}
		return true
	case p < 80:
		st.fault("malformed")
		for _, f := range [][]byte{
			[]byte(`not json`),
			[]byte(`{"id":true,"method":"Shelly.GetStatus"}`),
			[]byte(`{"id":{"x":1},"method":"Shelly.GetStatus"}`),
			[]byte(`{"id":null,"method":"Shelly.GetStatus"}`),
			[]byte(`{"method":7}`), // with an id it is answered -103
			[]byte(`[{"id":"m2","method":"Shelly.GetStatus"}]`),
			[]byte(`{"id":"m3","method":"Shelly.GetStatus"`),
			[]byte(`{"method":"Shelly.GetStatus"}`),
			[]byte(``),
		} {
			c.sendRaw(f)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.ws.Write(ctx, websocket.MessageBinary, []byte(`{"id":"m4","method":"Shelly.GetStatus"}`))
		cancel()
		return false
	case p < 90:
		st.fault("oversized")
		big := make([]byte, c.s.cfg.oversized)
		copy(big, `{"id":"big","method":"Shelly.GetStatus","params":{"pad":"`)
		for i := 56; i < len(big)-3; i++ {
			big[i] = 'x'
		}
		copy(big[len(big)-3:], `"}}`)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.ws.Write(ctx, websocket.MessageText, big)
		cancel()
		t := time.NewTimer(c.s.cfg.stallHold)
		defer t.Stop()
		select {
		case <-c.done:
		case <-c.s.calm:
		case <-t.C:
		}
		return true
	default:
		last := time.Unix(0, c.s.lastRest.Load())
		if time.Since(last) < c.s.cfg.restartEvery || !c.s.inRest.CompareAndSwap(false, true) {
			st.fault("drop")
			c.ws.CloseNow()
			return true
		}
		c.s.lastRest.Store(time.Now().UnixNano())
		st.fault("restart")
		down := between(c.rng, 50*time.Millisecond, 500*time.Millisecond)
		if !c.s.track() {
			c.s.inRest.Store(false)
			return true
		}
		go func() {
			defer c.s.bg.Done()
			c.s.restart(down)
		}()
		return true
	}
}

// stallListener registers every accepted connection with the server.
type stallListener struct {
	net.Listener
	s *faultServer
}

func (l *stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, closed: make(chan struct{})}
	sc.onClose = func() {
		l.s.mu.Lock()
		if l.s.raw[c.RemoteAddr().String()] == sc {
			delete(l.s.raw, c.RemoteAddr().String())
		}
		l.s.mu.Unlock()
	}
	l.s.mu.Lock()
	if l.s.closed {
		l.s.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.s.raw[c.RemoteAddr().String()] = sc
	l.s.mu.Unlock()
	return sc, nil
}

// stallConn is a TCP connection whose reads or writes the server can stall:
// a stalled call blocks until the connection is closed.
type stallConn struct {
	net.Conn
	readStall, writeStall atomic.Bool
	closed                chan struct{}
	once                  sync.Once
	onClose               func()
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.readStall.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.writeStall.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.onClose()
	})
	return c.Conn.Close()
}
