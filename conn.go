package shellyws

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/frame"
)

// Run keeps the outbound connection up while ctx lives: it dials the
// configured server, sends NotifyFullStatus, serves requests through the
// Dispatcher, sends notifications, and redials with backoff whenever the
// connection fails or the server closes it. While the component is disabled
// or has no server it dials nothing and waits for Restart.
//
// Run blocks until ctx ends, then closes the connection with status 1001,
// waits for every goroutine it started (handlers and callbacks included) and
// returns nil. It may be called only once; a second call returns
// ErrAlreadyRunning.
func (c *Component) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	cb := &callbackRunner{}
	defer func() {
		cb.wait()
		c.state.set(StateClosed, nil)
	}()
	bo := c.opts.newBackoff()
	bo.Reset()
	for {
		if ctx.Err() != nil {
			return nil
		}
		cfg, restart := c.activeConfig()
		if !cfg.Enable || cfg.Server == nil {
			c.state.set(StateDisconnected, nil)
			c.opts.logger.Debug("shellyws: outbound websocket disabled or without server; waiting for a restart")
			select {
			case <-ctx.Done():
				return nil
			case <-restart:
				bo.Reset()
				continue
			}
		}
		c.state.set(StateConnecting, nil)
		healthy, restarted := c.connect(ctx, cfg, restart, cb)
		if ctx.Err() != nil {
			return nil
		}
		if restarted {
			bo.Reset()
			continue
		}
		if healthy {
			bo.Reset()
		}
		delay := nextDelay(bo)
		c.opts.logger.Info("shellyws: reconnecting", "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-restart:
			t.Stop()
			bo.Reset()
		case <-t.C:
		}
	}
}

// nextDelay never lets a policy give up: a device retries for ever.
func nextDelay(bo backoff.BackOff) time.Duration {
	d := bo.NextBackOff()
	if d != backoff.Stop {
		return d
	}
	if eb, ok := bo.(*backoff.ExponentialBackOff); ok && eb.MaxInterval > 0 {
		return eb.MaxInterval
	}
	return 60 * time.Second
}

// connect makes one connection and serves it until it ends. healthy reports
// whether it stayed up long enough to reset the backoff; restarted, whether
// it ended because of Restart.
func (c *Component) connect(ctx context.Context, cfg Config, restart <-chan struct{}, cb *callbackRunner) (healthy, restarted bool) {
	server := *cfg.Server
	log := c.opts.logger.With("server", redactURL(server))
	conn, status, err := c.dial(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return false, false
		}
		cerr := c.connError("dial", server, status, err)
		c.dialFailures.Add(1)
		c.state.set(StateDisconnected, cerr)
		log.Warn("shellyws: dial failed", "err", cerr, "http_status", status)
		return false, false
	}
	conn.SetReadLimit(c.opts.readLimit)
	s := &session{
		c:        c,
		conn:     conn,
		server:   server,
		log:      log,
		out:      make(chan []byte, c.opts.maxInFlight),
		slots:    make(chan struct{}, c.opts.maxInFlight),
		readDone: make(chan error, 1),
		pingDone: make(chan error, 1),
	}
	start := c.opts.now()
	connected, cause, restarted := s.run(ctx, restart, cb)
	if !connected {
		c.dialFailures.Add(1)
		c.state.set(StateDisconnected, cause)
		return false, restarted
	}
	c.disconnects.Add(1)
	c.state.set(StateDisconnected, cause)
	if ctx.Err() == nil {
		log.Warn("shellyws: disconnected", "err", cause)
	}
	if f := c.opts.onDisconnect; f != nil {
		cb.post(func() { f(cause) })
	}
	return c.opts.now().Sub(start) >= c.opts.healthyAfter, restarted
}

// session is one live connection. Its goroutine (the caller of run) is the
// only writer; one reader goroutine feeds handlers, each on a goroutine of
// its own up to the in-flight limit.
type session struct {
	c      *Component
	conn   *websocket.Conn
	server string
	log    *slog.Logger

	ctx    context.Context // ends with the session; handlers get it
	cancel context.CancelFunc
	wg     sync.WaitGroup // reader, handlers, ping

	out      chan []byte   // encoded responses, for the writer
	slots    chan struct{} // in-flight requests
	readDone chan error
	pingDone chan error
	wbuf     []byte // the writer's notification buffer
}

// closeMode says how run ends a connection.
type closeMode int

const (
	closeAbort closeMode = iota // the connection is already broken
	closeGoingAway
	closeRestart
)

// closeGrace bounds a clean close on shutdown: a server that does not
// answer the close frame, or a write stalled on a full socket, is cut off
// after it, so Run returns promptly.
const closeGrace = time.Second

func (s *session) run(parent context.Context, restart <-chan struct{}, cb *callbackRunner) (connected bool, cause error, restarted bool) {
	// Not derived from parent: cancelling a read context tears the socket
	// down at once, and on shutdown the server deserves a close frame first.
	// closeGrace after parent ends, s.ctx ends too, aborting whatever still
	// waits on the socket.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	abortDone := make(chan struct{})
	stopAbort := context.AfterFunc(parent, func() {
		defer close(abortDone)
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-t.C:
			s.cancel()
		case <-s.ctx.Done():
		}
	})
	mode := closeAbort
	defer func() {
		switch mode {
		case closeGoingAway:
			s.conn.Close(websocket.StatusGoingAway, "shutting down")
		case closeRestart:
			s.conn.Close(websocket.StatusServiceRestart, "restart")
		default:
			s.conn.CloseNow()
		}
		s.cancel()
		if !stopAbort() {
			<-abortDone
		}
		s.wg.Wait()
		if parent.Err() != nil && !restarted {
			cause = s.c.connError("shutdown", s.server, 0, context.Cause(parent))
		}
	}()
	// NotifyFullStatus goes first, before any response, and the reader
	// starts only once the state is connected, so a request the server sent
	// the instant the handshake finished waits in the socket and then sees
	// Ws.GetStatus report connected.
	if err := s.sendFullStatus(); err != nil {
		return false, err, false
	}
	s.c.connects.Add(1)
	s.c.state.set(StateConnected, nil)
	s.wg.Add(1)
	go s.readLoop()
	s.log.Info("shellyws: connected")
	if f := s.c.opts.onConnect; f != nil {
		cb.post(f)
	}

	var tick <-chan time.Time
	if iv := s.c.opts.pingInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	pinging := false
	for {
		if err := s.flushQueue(); err != nil {
			return true, err, false
		}
		select {
		case <-parent.Done():
			mode = closeGoingAway
			return true, s.c.connError("shutdown", s.server, 0, context.Cause(parent)), false
		case <-restart:
			mode = closeRestart
			return true, s.c.connError("restart", s.server, 0, ErrRestarted), true
		case err := <-s.readDone:
			return true, s.c.connError("read", s.server, 0, err), false
		case f := <-s.out:
			err := s.write(f)
			putBuf(f)
			if err != nil {
				return true, err, false
			}
		case <-s.c.queue.ready:
		case <-tick:
			if !pinging {
				pinging = true
				s.wg.Add(1)
				go s.ping()
			}
		case err := <-s.pingDone:
			pinging = false
			if err != nil {
				return true, s.c.connError("ping", s.server, 0, err), false
			}
		}
	}
}

func (s *session) sendFullStatus() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.writeTimeout)
	defer cancel()
	params, err := s.c.fullStatusParams(ctx)
	if err != nil {
		s.conn.Close(websocket.StatusInternalError, "no status")
		return s.c.connError("status", s.server, 0, err)
	}
	s.wbuf = frame.AppendNotification(s.wbuf[:0], s.c.id, outboundDst, MethodNotifyFullStatus, params)
	return s.write(s.wbuf)
}

// flushQueue writes every queued notification. One that fails to go out is
// put back at the head, so it is sent after the next NotifyFullStatus.
func (s *session) flushQueue() error {
	for {
		n, ok := s.c.queue.pop()
		if !ok {
			return nil
		}
		s.wbuf = frame.AppendNotification(s.wbuf[:0], s.c.id, outboundDst, n.method, n.params)
		if err := s.write(s.wbuf); err != nil {
			s.c.queue.pushFront(n)
			return err
		}
		if cap(s.wbuf) > maxKeptBuf {
			s.wbuf = nil
		}
	}
}

func (s *session) write(f []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.writeTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, f); err != nil {
		return s.c.connError("write", s.server, 0, err)
	}
	return nil
}

func (s *session) ping() {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.pingTimeout)
	defer cancel()
	err := s.conn.Ping(ctx)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("no pong within %v", s.c.opts.pingTimeout)
	}
	s.pingDone <- err
}

// maxKeptBuf is the largest buffer a connection keeps between frames, so an
// idle device does not hold on to the memory of its largest frame.
const maxKeptBuf = 64 << 10

func (s *session) readLoop() {
	defer s.wg.Done()
	var buf bytes.Buffer
	for {
		typ, r, err := s.conn.Reader(s.ctx)
		if err != nil {
			s.readDone <- err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			s.readDone <- err
			return
		}
		if typ != websocket.MessageText {
			s.log.Debug("shellyws: dropped a binary message", "len", buf.Len())
			continue
		}
		fr, err := frame.Decode(buf.Bytes())
		fr = fr.Detach() // buf is reused for the next frame
		if buf.Cap() > maxKeptBuf {
			buf = bytes.Buffer{}
		}
		if err != nil {
			s.log.Debug("shellyws: dropped a malformed frame", "err", err)
			continue
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			s.readDone <- s.ctx.Err()
			return
		}
		req := &Request{ID: fr.ID, Src: fr.Src, Method: fr.Method, Params: fr.Params}
		s.wg.Add(1)
		go s.serve(req)
	}
}

func (s *session) serve(req *Request) {
	defer func() {
		<-s.slots
		s.wg.Done()
	}()
	result, err := s.dispatch(req)
	if req.ID == nil {
		return
	}
	f := s.c.encodeResponse(getBuf(), req, result, err)
	select {
	case s.out <- f:
	case <-s.ctx.Done():
		putBuf(f)
	}
}

// dispatch calls the Dispatcher, turning a panic into a 500 so that one bad
// handler cannot take the device down.
func (s *session) dispatch(req *Request) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("shellyws: handler panicked", "method", req.Method, "panic", p)
			result, err = nil, Errorf(CodeInternal, "Internal error in %s", req.Method)
		}
	}()
	return s.c.disp.Dispatch(s.ctx, req)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > maxKeptBuf {
		return
	}
	bufPool.Put(&b)
}

// callbackRunner runs user callbacks in order on a goroutine that exists
// only while callbacks are pending, so they never stall the connection.
type callbackRunner struct {
	mu      sync.Mutex
	pending []func()
	running bool
	wg      sync.WaitGroup
}

// maxPendingCallbacks bounds the callbacks waiting behind a slow one; the
// oldest are dropped past it.
const maxPendingCallbacks = 64

func (r *callbackRunner) post(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= maxPendingCallbacks {
		r.pending = r.pending[1:]
	}
	r.pending = append(r.pending, f)
	if !r.running {
		r.running = true
		r.wg.Add(1)
		go r.drain()
	}
}

func (r *callbackRunner) drain() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.running = false
			r.pending = nil
			r.mu.Unlock()
			return
		}
		f := r.pending[0]
		r.pending[0] = nil
		r.pending = r.pending[1:]
		r.mu.Unlock()
		f()
	}
}

func (r *callbackRunner) wait() { r.wg.Wait() }
