package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The server child. The benchmark process re-executes its own test binary
// with childEnv set; the child listens on 127.0.0.1, prints its address on
// stdout and serves until its stdin closes. Endpoints:
//
//	/rt?n=N&depth=D  reads the device's first frame, then sends N requests
//	                 {"id":i,"src":"bench","method":"Ws.GetStatus"}, keeping
//	                 D unanswered, reads N answers, closes with 1000.
//	/notify?n=N      reads the first frame and N more, closes with 1000.
//	/fleet           counts the handshake attempt; answers 503 while down;
//	                 otherwise reads the first frame and then whatever comes,
//	                 until the connection ends.
//	/ctl/stop?down=D closes every /fleet connection abruptly, answers 503
//	                 to handshakes for D, and restarts the attempt record.
//	/ctl/attempts    the attempts since the last stop, as JSON.

// childIOTimeout bounds every single read and write of the child.
const childIOTimeout = 30 * time.Second

func serveChild() int {
	raiseFileLimit()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	f := newFleetServer()
	mux := http.NewServeMux()
	mux.HandleFunc("/rt", serveRoundTrips)
	mux.HandleFunc("/notify", serveNotify)
	mux.HandleFunc("/fleet", f.serveDevice)
	mux.HandleFunc("/ctl/stop", f.serveStop)
	mux.HandleFunc("/ctl/attempts", f.serveAttempts)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: childIOTimeout}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin (or dies) to stop us
	return 0
}

// raiseFileLimit lifts the soft limit on open files to the hard limit: a
// 10,000-device fleet holds 10,000 sockets on each side.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

func accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

func queryInt(r *http.Request, key string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(key)); err == nil {
		return v
	}
	return def
}

// readFrame reads one message whole into buf.
func readFrame(ctx context.Context, c *websocket.Conn, buf []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, childIOTimeout)
	defer cancel()
	_, rd, err := c.Reader(ctx)
	if err != nil {
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func serveRoundTrips(w http.ResponseWriter, r *http.Request) {
	n, depth := queryInt(r, "n", 1), queryInt(r, "depth", 1)
	c, err := accept(w, r)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	buf, err := readFrame(ctx, c, make([]byte, 0, 4096)) // NotifyFullStatus
	if err != nil {
		return
	}
	var req []byte
	sent := 0
	send := func() error {
		sent++
		req = append(req[:0], `{"id":`...)
		req = strconv.AppendInt(req, int64(sent), 10)
		req = append(req, `,"src":"bench","method":"Ws.GetStatus"}`...)
		wctx, cancel := context.WithTimeout(ctx, childIOTimeout)
		defer cancel()
		return c.Write(wctx, websocket.MessageText, req)
	}
	for sent < min(depth, n) {
		if send() != nil {
			return
		}
	}
	for got := 0; got < n; got++ {
		if buf, err = readFrame(ctx, c, buf); err != nil {
			return
		}
		if sent < n && send() != nil {
			return
		}
	}
	c.Close(websocket.StatusNormalClosure, "done")
}

func serveNotify(w http.ResponseWriter, r *http.Request) {
	n := queryInt(r, "n", 1)
	c, err := accept(w, r)
	if err != nil {
		return
	}
	defer c.CloseNow()
	buf := make([]byte, 0, 4096)
	for i := 0; i <= n; i++ { // the first frame, then n
		if buf, err = readFrame(r.Context(), c, buf); err != nil {
			return
		}
	}
	c.Close(websocket.StatusNormalClosure, "done")
}

type fleetServer struct {
	mu        sync.Mutex
	conns     map[*websocket.Conn]struct{}
	downUntil time.Time
	t0        time.Time       // the last stop
	attempts  []time.Duration // handshake attempts since t0
	refused   int
}

func newFleetServer() *fleetServer {
	return &fleetServer{conns: make(map[*websocket.Conn]struct{}), t0: time.Now()}
}

func (f *fleetServer) serveDevice(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	f.mu.Lock()
	f.attempts = append(f.attempts, now.Sub(f.t0))
	down := now.Before(f.downUntil)
	if down {
		f.refused++
	}
	f.mu.Unlock()
	if down {
		// 502, as a proxy answers for a backend that is restarting: a 503
		// would ask the devices for the server's longer back-off (60-120 s)
		// and the storm would no longer measure the normal backoff.
		http.Error(w, "restarting", http.StatusBadGateway)
		return
	}
	c, err := accept(w, r)
	if err != nil {
		return
	}
	defer c.CloseNow()
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	// No read timeout: idle devices stay connected for as long as the
	// benchmark wants, and their keepalive pings are answered by the reader.
	ctx := r.Context()
	for {
		_, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			return
		}
	}
}

func (f *fleetServer) serveStop(w http.ResponseWriter, r *http.Request) {
	down, err := time.ParseDuration(r.URL.Query().Get("down"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.t0 = time.Now()
	f.downUntil = f.t0.Add(down)
	f.attempts = nil
	f.refused = 0
	conns := make([]*websocket.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	// A crash: no close frame. In parallel, because CloseNow waits for the
	// connection's reader to return, and one after the other, 10,000 of
	// them would spread the crash over seconds.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.CloseNow()
		}()
	}
	wg.Wait()
	fmt.Fprintln(w, len(conns))
}

// attemptsReport is what /ctl/attempts answers.
type attemptsReport struct {
	// AttemptsMS are the handshake attempts' times since the stop, in ms.
	AttemptsMS []float64 `json:"attempts_ms"`
	// Refused counts those answered with 503.
	Refused int `json:"refused"`
}

func (f *fleetServer) serveAttempts(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	rep := attemptsReport{Refused: f.refused, AttemptsMS: make([]float64, len(f.attempts))}
	for i, d := range f.attempts {
		rep.AttemptsMS[i] = float64(d) / float64(time.Millisecond)
	}
	f.mu.Unlock()
	json.NewEncoder(w).Encode(rep)
}

// The parent's side.

var child struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
}

// childAddr starts the server child once per process and returns its
// host:port.
func childAddr(tb testing.TB) string {
	child.mu.Lock()
	defer child.mu.Unlock()
	if child.cmd != nil {
		return child.addr
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=server")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stdin.Close()
		cmd.Wait()
		tb.Fatalf("bench child did not start: %v", err)
	}
	child.cmd, child.stdin, child.addr = cmd, stdin, strings.TrimSpace(line)
	return child.addr
}

func stopChild() {
	child.mu.Lock()
	defer child.mu.Unlock()
	if child.cmd == nil {
		return
	}
	child.stdin.Close()
	done := make(chan struct{})
	go func() { child.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		child.cmd.Process.Kill()
		<-done
	}
	child.cmd = nil
}

// ctlClient talks to the child's /ctl endpoints without keeping connections
// (and their goroutines) around.
var ctlClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

func ctlGet(tb testing.TB, path string, v any) {
	resp, err := ctlClient.Get("http://" + childAddr(tb) + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: %s", path, resp.Status)
	}
	if v == nil {
		io.Copy(io.Discard, resp.Body)
		return
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatal(errors.Join(fmt.Errorf("%s", path), err))
	}
}
