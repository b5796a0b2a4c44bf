package shellywstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/redact"
)

// DefaultTimeout bounds every wait of the helpers ending in T.
const DefaultTimeout = 10 * time.Second

// Limits and defaults of the server.
const (
	// DefaultSrc is the src of the requests Conn.Call sends unless WithSrc
	// says otherwise.
	DefaultSrc = "shellywstest"
	// DefaultQueueSize is how many frames a connection keeps for Next unless
	// WithQueueSize says otherwise.
	DefaultQueueSize = 4096
	// ReadLimit is the largest message the server reads from a device.
	ReadLimit = 16 << 20

	// maxPendingAccept is how many connections may wait for Accept; further
	// handshakes are answered 503.
	maxPendingAccept = 1024
	// relistenTimeout bounds how long Restart retries a busy address.
	relistenTimeout = 5 * time.Second
	// relistenInterval is the pause between those retries.
	relistenInterval = 10 * time.Millisecond
	// readHeaderTimeout bounds a handshake request's headers.
	readHeaderTimeout = 10 * time.Second
)

// Subprotocol is the websocket subprotocol the server offers.
const Subprotocol = "json-rpc"

// Errors reported by the server and its connections; test them with errors.Is.
var (
	// ErrServerClosed is returned by Accept, Start and Restart after Close.
	ErrServerClosed = errors.New("shellywstest: server closed")
	// ErrConnClosed is wrapped, together with the cause, by every wait on a
	// connection that is gone (Next, the Expect helpers, Call).
	ErrConnClosed = errors.New("shellywstest: connection closed")
	// ErrClosedByServer is the cause (Conn.Err) of a connection the server
	// side ended: Conn.Close, Server.CloseConns, Stop, Restart or Close.
	ErrClosedByServer = errors.New("shellywstest: closed by the server")
	// ErrQueueOverflow is the cause of a connection closed with 1008 because
	// the device sent more frames than the queue for Next holds.
	ErrQueueOverflow = errors.New("shellywstest: receive queue overflow")
)

// Option configures a Server.
type Option func(*options)

type options struct {
	path      string
	logf      func(format string, args ...any)
	src       string
	queueSize int
}

// WithPath sets the URL path the server serves. Only that path is upgraded;
// a handshake for any other path is answered 404 (and counted by
// Handshakes), so a test sees whether the device dials its URL verbatim. The
// query string is not checked; Conn.RequestURI shows what the device sent.
// A path without a leading slash gets one. Default "/".
func WithPath(p string) Option {
	return func(o *options) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		o.path = p
	}
}

// WithLogf sets a transcript hook, called with one line (printf style, no
// trailing newline) for every frame in and out and for each connect, close
// and handshake rejection, with secrets masked (URL user info and query
// values, ha1s, passwords); the format is described in the package doc. It may
// be called from several goroutines at once, never while the server holds a
// lock; t.Logf qualifies. Default: no transcript.
func WithLogf(f func(format string, args ...any)) Option {
	return func(o *options) { o.logf = f }
}

// WithSrc sets the src of the requests Conn.Call sends. Default DefaultSrc
// ("shellywstest").
func WithSrc(src string) Option {
	return func(o *options) { o.src = src }
}

// WithQueueSize sets how many frames each connection keeps for Next and the
// Expect helpers. A device that sends more before the test reads them is
// closed with 1008 and the connection's Err wraps ErrQueueOverflow. Values
// below 1 mean the default. Default DefaultQueueSize (4096).
func WithQueueSize(n int) Option {
	return func(o *options) { o.queueSize = n }
}

// Server is a loopback outbound-websocket server; it listens on 127.0.0.1
// only. Its methods are safe for concurrent use.
type Server struct {
	opts options

	// life serialises Start, StartTLS, Stop, Restart and Close.
	life sync.Mutex

	// Set by Start or StartTLS, read-only after.
	useTLS  bool
	tlsConf *tls.Config
	caPEM   []byte
	pool    *x509.CertPool

	// handlers counts handler goroutines admitted while running; the
	// goroutine of an upgraded connection is its reader.
	handlers sync.WaitGroup

	mu           sync.Mutex
	started      bool
	running      bool
	closed       bool
	addr         string // "127.0.0.1:port" once started
	gen          *generation
	conns        map[*Conn]struct{}
	accept       []*Conn       // upgraded, waiting for Accept
	acceptSig    chan struct{} // closed and replaced when accept or closed changes
	handshakes   int
	rejectLeft   int
	rejectStatus int
	rejectHeader http.Header
}

// generation is one listening period, from Start or Restart to Stop.
type generation struct {
	hs        *http.Server
	serveDone chan struct{}
	// conns counts the http.Server's connection goroutines: +1 on StateNew,
	// -1 on StateClosed or StateHijacked (a hijacked one is then a handler,
	// counted by Server.handlers).
	conns sync.WaitGroup
}

// NewServer starts a plain ws:// server and registers its Close with
// t.Cleanup. It fails the test if it cannot listen.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewUnstartedServer(opts...)
	if err := s.Start(); err != nil {
		t.Fatalf("shellywstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer starts a wss:// server with a certificate authority generated
// for it (ECDSA P-256) and a leaf certificate for 127.0.0.1 and "localhost"
// signed by that CA; a device trusts it through CACertPEM or CertPool. It
// registers Close with t.Cleanup and fails the test if it cannot start.
func NewTLSServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewUnstartedServer(opts...)
	if err := s.StartTLS(); err != nil {
		t.Fatalf("shellywstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewUnstartedServer returns a server that does not listen yet, for programs
// without a testing.TB; call Start or StartTLS, and Close when done.
func NewUnstartedServer(opts ...Option) *Server {
	o := options{path: "/", src: DefaultSrc, queueSize: DefaultQueueSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.queueSize < 1 {
		o.queueSize = DefaultQueueSize
	}
	return &Server{
		opts:      o,
		conns:     make(map[*Conn]struct{}),
		acceptSig: make(chan struct{}),
	}
}

// Start starts listening on 127.0.0.1 on a free port, serving ws://. It
// fails if the server was started before or is closed.
func (s *Server) Start() error {
	return s.start(false)
}

// StartTLS is Start for wss://, with the certificates NewTLSServer describes.
func (s *Server) StartTLS() error {
	return s.start(true)
}

func (s *Server) start(useTLS bool) error {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrServerClosed
	case started:
		return errors.New("shellywstest: server already started")
	}
	if useTLS {
		ca, err := newCertificates()
		if err != nil {
			return fmt.Errorf("shellywstest: generating certificates: %w", err)
		}
		s.useTLS = true
		s.caPEM = ca.caPEM
		s.pool = ca.pool
		s.tlsConf = &tls.Config{
			Certificates: []tls.Certificate{ca.leaf},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("shellywstest: listen: %w", err)
	}
	s.mu.Lock()
	s.started = true
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	s.serve(ln)
	s.logf("== listening %s", s.URL())
	return nil
}

// serve starts a generation on ln; the caller holds s.life.
func (s *Server) serve(ln net.Listener) {
	if s.useTLS {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	g := &generation{serveDone: make(chan struct{})}
	errorLog := log.New(io.Discard, "", 0)
	if s.opts.logf != nil {
		errorLog = log.New(logWriter(s.logf), "== ", 0)
	}
	g.hs = &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          errorLog,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				g.conns.Add(1)
			case http.StateHijacked, http.StateClosed:
				g.conns.Done()
			}
		},
	}
	s.mu.Lock()
	s.gen = g
	s.running = true
	s.mu.Unlock()
	go func() {
		defer close(g.serveDone)
		_ = g.hs.Serve(ln)
	}()
}

// logWriter turns http.Server's error log into transcript lines.
type logWriter func(format string, args ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// URL returns the URL devices dial: "ws://127.0.0.1:PORT/path" or
// "wss://127.0.0.1:PORT/path". It stays the same across Stop and Restart, and
// is empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	if addr == "" {
		return ""
	}
	scheme := "ws"
	if s.isTLS() {
		scheme = "wss"
	}
	return scheme + "://" + addr + s.opts.path
}

// Addr returns the "127.0.0.1:PORT" the server listens on, empty before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Server) isTLS() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started && s.useTLS
}

// CACertPEM returns the certificate authority of a TLS server in PEM, as a
// device's user CA bundle takes it; nil for a plain server. The CA stays the
// same across Restart.
func (s *Server) CACertPEM() []byte {
	if !s.isTLS() {
		return nil
	}
	return append([]byte(nil), s.caPEM...)
}

// CertPool returns a pool holding the certificate authority of a TLS server,
// for a tls.Config's RootCAs; nil for a plain server. Each call returns a new
// pool.
func (s *Server) CertPool() *x509.CertPool {
	if !s.isTLS() {
		return nil
	}
	return s.pool.Clone()
}

// Accept returns the next device connection, in order of arrival, waiting
// for one until ctx ends. Connections the device already closed are
// returned too (their Done is closed). At most 1024 connections wait;
// while that many do, further handshakes are answered 503. Stop and Restart
// discard the connections Accept has not returned yet. After Close it
// returns ErrServerClosed.
func (s *Server) Accept(ctx context.Context) (*Conn, error) {
	for {
		s.mu.Lock()
		if len(s.accept) > 0 {
			c := s.accept[0]
			s.accept[0] = nil
			s.accept = s.accept[1:]
			s.mu.Unlock()
			return c, nil
		}
		if s.closed {
			s.mu.Unlock()
			return nil, ErrServerClosed
		}
		sig := s.acceptSig
		s.mu.Unlock()
		select {
		case <-sig:
		case <-ctx.Done():
			return nil, fmt.Errorf("shellywstest: accept: %w", ctx.Err())
		}
	}
}

// AcceptT is Accept bounded by DefaultTimeout; it fails the test on error.
func (s *Server) AcceptT(t testing.TB) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	c, err := s.Accept(ctx)
	if err != nil {
		t.Fatalf("shellywstest: %v", err)
	}
	return c
}

// signalAccept wakes Accept waiters; the caller holds s.mu.
func (s *Server) signalAccept() {
	close(s.acceptSig)
	s.acceptSig = make(chan struct{})
}

// RejectNext makes the next n handshakes fail with httpStatus and a short
// body instead of upgrading (for example 503, or 401). It replaces an earlier
// RejectNext that has not run out; n = 0 cancels it. It panics if n is
// negative or httpStatus is not in 200–599, which are programming errors.
func (s *Server) RejectNext(n int, httpStatus int) {
	s.RejectNextWithHeader(n, httpStatus, nil)
}

// RejectNextWithHeader is RejectNext whose answers also carry header, for
// example a Retry-After with a 503 or 429:
//
//	srv.RejectNextWithHeader(1, 503, http.Header{"Retry-After": {"120"}})
func (s *Server) RejectNextWithHeader(n int, httpStatus int, header http.Header) {
	if n < 0 || httpStatus < 200 || httpStatus > 599 {
		panic(fmt.Sprintf("shellywstest: RejectNext(%d, %d): need n >= 0 and a status in 200-599", n, httpStatus))
	}
	s.mu.Lock()
	s.rejectLeft, s.rejectStatus, s.rejectHeader = n, httpStatus, header.Clone()
	s.mu.Unlock()
}

// Handshakes returns how many HTTP requests reached the server so far,
// upgraded or not: rejected ones (RejectNext, a wrong path, a full Accept
// queue) and failed upgrades included. It is not reset by Restart.
func (s *Server) Handshakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

// CloseConns closes every open device connection with code and reason (a
// close handshake, at most 125 bytes of reason), concurrently, and returns
// when all of them are gone. A device that does not answer the close frame
// is cut off after coder/websocket's 5 s close timeout. The server keeps
// listening.
func (s *Server) CloseConns(code websocket.StatusCode, reason string) {
	var wg sync.WaitGroup
	for _, c := range s.openConns() {
		wg.Go(func() { _ = c.Close(code, reason) })
	}
	wg.Wait()
}

func (s *Server) openConns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Stop stops listening and drops every connection without a close frame,
// like a crashed process: devices see their TCP connection end and further
// dials are refused. The server keeps its address; Restart brings it back.
// Connections Accept has not returned yet are discarded. Stop on a stopped
// or closed server does nothing.
func (s *Server) Stop() {
	s.life.Lock()
	defer s.life.Unlock()
	if s.stop() {
		s.logf("== stopped")
	}
}

// stop ends the current generation and waits for all its goroutines; the
// caller holds s.life. It reports whether the server was running.
func (s *Server) stop() bool {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return false
	}
	s.running = false
	g := s.gen
	s.gen = nil
	s.accept = nil
	s.mu.Unlock()

	_ = g.hs.Close() // the listener and every connection not upgraded
	<-g.serveDone
	for _, c := range s.openConns() {
		c.drop()
	}
	g.conns.Wait()
	s.handlers.Wait()
	return true
}

// Restart stops the server as Stop does (if it is running) and listens again
// on the same address, so URL stays valid. If the port is momentarily busy it
// retries for up to 5 s, bounded by ctx. It fails before Start and after
// Close.
func (s *Server) Restart(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	started, closed, addr := s.started, s.closed, s.addr
	s.mu.Unlock()
	switch {
	case closed:
		return ErrServerClosed
	case !started:
		return errors.New("shellywstest: Restart before Start")
	}
	s.stop()

	ctx, cancel := context.WithTimeout(ctx, relistenTimeout)
	defer cancel()
	var lc net.ListenConfig
	for {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			s.serve(ln)
			s.logf("== restarted %s", s.URL())
			return nil
		}
		t := time.NewTimer(relistenInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("shellywstest: listening again on %s: %w", addr, err)
		case <-t.C:
		}
	}
}

// Close stops the server for good: it stops listening, drops every
// connection, wakes Accept with ErrServerClosed and returns after every
// goroutine the server started has exited. It is idempotent.
func (s *Server) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	s.stop()
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.accept = nil
	s.signalAccept()
	s.mu.Unlock()
	if !already {
		s.logf("== closed")
	}
}

// handle serves one HTTP request: a rejection or a websocket connection,
// whose reader then runs on this goroutine.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	// Refusals close the TCP connection, so no client keeps it idle.
	w.Header().Set("Connection", "close")

	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		http.Error(w, "shellywstest: stopping", http.StatusServiceUnavailable)
		return
	}
	s.handshakes++
	n := s.handshakes
	status := 0
	var header http.Header
	switch {
	case s.rejectLeft > 0:
		s.rejectLeft--
		status, header = s.rejectStatus, s.rejectHeader
	case r.URL.Path != s.opts.path:
		status = http.StatusNotFound
	case len(s.accept) >= maxPendingAccept:
		status = http.StatusServiceUnavailable
	}
	if status == 0 {
		s.handlers.Add(1)
	}
	s.mu.Unlock()

	if status != 0 {
		s.logf("== handshake %d for %s rejected with %d", n, r.URL.RequestURI(), status)
		for k, v := range header {
			w.Header()[k] = v
		}
		http.Error(w, fmt.Sprintf("shellywstest: handshake rejected (%d %s)", status, http.StatusText(status)), status)
		return
	}
	defer s.handlers.Done()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		s.logf("== handshake %d from %s failed: %v", n, r.RemoteAddr, err)
		return
	}
	ws.SetReadLimit(ReadLimit)
	c := newConn(s, ws, r)

	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.conns[c] = struct{}{}
	s.accept = append(s.accept, c)
	s.signalAccept()
	s.mu.Unlock()

	s.logf("== connected %s GET %s subprotocol=%s", c.remoteAddr, c.requestURI, c.subprotocol)
	c.readLoop()

	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// logf writes a transcript line if WithLogf set a hook, with its secrets
// masked (URL user info and query values, ha1s, passwords; see
// internal/redact).
func (s *Server) logf(format string, args ...any) {
	if s.opts.logf != nil {
		s.opts.logf("%s", redact.Text(fmt.Sprintf(format, args...)))
	}
}
