//go:build linux

package blackbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// server is the loopback server the devices dial: it reads each
// connection's NotifyFullStatus, counts the devices that sent one since the
// last restart, timestamps every handshake, and hands the connections of
// chosen devices to the round-trip driver. restart drops every connection
// without a close frame and closes the listener, as a crashed server does.
// With setPing it pings every connection it reads (see ping_test.go).
type server struct {
	addr string // 127.0.0.1:PORT, the same across restarts

	mu         sync.Mutex
	srv        *http.Server
	done       chan struct{} // closed when srv.Serve returned
	raw        map[net.Conn]struct{}
	seen       map[string]struct{} // devices that sent NotifyFullStatus since the last restart
	want       int
	reached    chan struct{} // closed when len(seen) reaches want
	reachedAt  time.Time     // when reached closed
	handshakes []time.Time
	watch      map[string]chan *websocket.Conn // src → where its connection goes
	readers    sync.WaitGroup

	pingEvery time.Duration        // 0: silent
	pingers   map[*pinger]struct{} // one per connection the server reads
	pinging   sync.WaitGroup       // pings in flight
	pings     pingStats
}

// pingStats counts the server's pings since it started.
type pingStats struct {
	sent, answered, missed atomic.Int64
}

func newServer() (*server, error) {
	s := &server{
		raw: map[net.Conn]struct{}{}, seen: map[string]struct{}{}, watch: map[string]chan *websocket.Conn{},
		pingers: map[*pinger]struct{}{},
	}
	if err := s.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return s, nil
}

// URL is the address devices dial.
func (s *server) URL() string { return "ws://" + s.addr + "/shelly" }

func (s *server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 30 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch st {
			case http.StateNew:
				s.raw[c] = struct{}{}
			case http.StateClosed:
				delete(s.raw, c)
			}
		},
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.addr, s.srv, s.done = ln.Addr().String(), srv, done
	s.mu.Unlock()
	go func() {
		_ = srv.Serve(ln)
		close(done)
	}()
	return nil
}

// expect arms the count: the returned channel closes once n devices have
// sent NotifyFullStatus since the last restart (or since now, with reset).
func (s *server) expect(n int, reset bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reset {
		s.seen = map[string]struct{}{}
	}
	s.want, s.reached = n, make(chan struct{})
	if len(s.seen) >= n {
		s.reachedAt = time.Now()
		close(s.reached)
	}
	return s.reached
}

// awaitReached waits until the count armed by expect (or re-armed by
// restart) is reached, and returns when that happened; it gives up when
// stop closes.
func (s *server) awaitReached(stop <-chan struct{}) (time.Time, bool) {
	s.mu.Lock()
	ch := s.reached
	s.mu.Unlock()
	select {
	case <-ch:
	case <-stop:
		return time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reachedAt, true
}

// current is the channel of the count now armed.
func (s *server) current() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reached
}

// watchFor hands the next connection of src to the returned channel, after
// its NotifyFullStatus, instead of reading it.
func (s *server) watchFor(src string) <-chan *websocket.Conn {
	ch := make(chan *websocket.Conn, 1)
	s.mu.Lock()
	s.watch[src] = ch
	s.mu.Unlock()
	return ch
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	s.handshakes = append(s.handshakes, now)
	s.mu.Unlock()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	s.readers.Add(1)
	defer s.readers.Done()
	ctx := context.Background()
	_, first, err := c.Read(ctx)
	if err != nil {
		c.CloseNow()
		return
	}
	var f struct {
		Src    string `json:"src"`
		Method string `json:"method"`
	}
	if json.Unmarshal(first, &f) != nil || f.Method != "NotifyFullStatus" || f.Src == "" {
		c.Close(websocket.StatusPolicyViolation, "NotifyFullStatus first")
		return
	}
	s.mu.Lock()
	if _, again := s.seen[f.Src]; !again {
		// A device seen before (a sleeping device's next wake) must not
		// close reached twice.
		s.seen[f.Src] = struct{}{}
		if len(s.seen) == s.want {
			s.reachedAt = time.Now()
			close(s.reached)
		}
	}
	watch := s.watch[f.Src]
	delete(s.watch, f.Src)
	s.mu.Unlock()
	if watch != nil {
		watch <- c
		return
	}
	p := s.startPinger(c)
	defer s.stopPinger(p)
	for {
		if _, _, err := c.Read(ctx); err != nil {
			c.CloseNow()
			return
		}
	}
}

// restart drops every connection and closes the listener, waits down, and
// listens on the same address again. It returns when the drop happened.
// The count expect armed starts again from zero, for the same number.
func (s *server) restart(down time.Duration) (time.Time, error) {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.seen = map[string]struct{}{}
	s.handshakes = nil
	if s.want > 0 {
		s.reached = make(chan struct{})
	}
	s.mu.Unlock()
	_ = srv.Close() // listener and idle connections
	s.mu.Lock()
	for c := range s.raw {
		_ = c.Close() // hijacked websockets too: no close frame
	}
	s.raw = map[net.Conn]struct{}{}
	s.mu.Unlock()
	dropped := time.Now()
	<-done
	time.Sleep(down) // the server is down: a wait by design, not a synchronisation
	return dropped, s.listen(s.addr)
}

// busiest returns the largest number of handshakes since the last restart
// in any window of length w, and their total.
func (s *server) busiest(w time.Duration) (most, total int) {
	s.mu.Lock()
	ts := slices.Clone(s.handshakes)
	s.mu.Unlock()
	return busiest(ts, w)
}

// busiest returns the largest number of ts in any window of length w, and
// their total; it sorts ts.
func busiest(ts []time.Time, w time.Duration) (most, total int) {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	j := 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most, len(ts)
}

// close stops the server and waits for its connections' readers and
// pings.
func (s *server) close() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	_ = srv.Close()
	s.mu.Lock()
	for c := range s.raw {
		_ = c.Close()
	}
	s.mu.Unlock()
	<-done
	s.readers.Wait()
	s.pinging.Wait()
}

// isNotification tells a device's notification from an answer (or the
// bare device's echo of the request).
func isNotification(frame []byte) bool { return bytes.Contains(frame, []byte(`"method":"Notify`)) }

// roundTrips sends n requests {"id":i,"src":"bench","method":"Ws.GetStatus"}
// on c, keeping depth unanswered, and returns the time per request.
func roundTrips(ctx context.Context, c *websocket.Conn, n, depth int) (time.Duration, error) {
	req := make([]byte, 0, 64)
	send := func(id int) error {
		req = append(req[:0], `{"id":`...)
		req = appendInt(req, id)
		req = append(req, `,"src":"bench","method":"Ws.GetStatus"}`...)
		return c.Write(ctx, websocket.MessageText, req)
	}
	start := time.Now()
	sent := 0
	for ; sent < min(depth, n); sent++ {
		if err := send(sent + 1); err != nil {
			return 0, err
		}
	}
	for got := 0; got < n; {
		_, frame, err := c.Read(ctx)
		if err != nil {
			return 0, err
		}
		if isNotification(frame) {
			continue
		}
		if !bytes.Contains(frame, []byte(`"id":`)) {
			return 0, errors.New("a frame that is no answer: " + string(frame))
		}
		got++
		if sent < n {
			sent++
			if err := send(sent); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

func appendInt(b []byte, v int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// resetHandshakes forgets the handshakes counted so far.
func (s *server) resetHandshakes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handshakes = nil
}
