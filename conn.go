package shellyws

import (
	"context"
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
			case <-restart.Done():
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
		case <-restart.Done():
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
func (c *Component) connect(ctx context.Context, cfg Config, restart context.Context, cb *callbackRunner) (healthy, restarted bool) {
	server := *cfg.Server
	log := c.opts.logger.With("server", redactURL(server))
	conn, raw, status, _, err := c.dial(ctx, cfg)
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
	s := &session{peer: newPeer(ctx, c, conn, raw, log, c.queue), server: server}
	s.peer.dst.Store(new(outboundDst))
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

// session is the outbound connection: a peer whose notifications are
// the component's own queue, opened by NotifyFullStatus.
type session struct {
	*peer
	server string
}

func (s *session) run(parent, restart context.Context, cb *callbackRunner) (connected bool, cause error, restarted bool) {
	// NotifyFullStatus goes first, before any response, and reading starts
	// only once the state is connected, so a request the server sent the
	// instant the handshake finished waits in the socket and then sees
	// Ws.GetStatus report connected.
	if err := s.sendFullStatus(); err != nil {
		s.finish(0, "")
		return false, err, false
	}
	s.c.connects.Add(1)
	s.c.state.set(StateConnected, nil)
	s.log.Info("shellyws: connected")
	if f := s.c.opts.onConnect; f != nil {
		cb.post(f)
	}
	s.c.live.Store(s.peer)
	end := s.peer.run(parent, websocket.StatusGoingAway, restart, websocket.StatusServiceRestart)
	s.c.live.CompareAndSwap(s.peer, nil)
	switch {
	case end.stop == 2:
		return true, s.c.connError("restart", s.server, 0, ErrRestarted), true
	case end.stop == 1 || parent.Err() != nil:
		return true, s.c.connError("shutdown", s.server, 0, context.Cause(parent)), false
	}
	return true, s.c.connError(end.op, s.server, 0, end.err), false
}

func (s *session) sendFullStatus() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.writeTimeout)
	defer cancel()
	params, err := s.c.fullStatusParams(ctx)
	if err != nil {
		s.closeWith(websocket.StatusInternalError, "no status")
		return s.c.connError("status", s.server, 0, err)
	}
	bp := getBuf()
	defer putBuf(bp)
	*bp = frame.AppendNotification(*bp, s.c.id, outboundDst, MethodNotifyFullStatus, params)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.write(*bp); err != nil {
		return s.c.connError("write", s.server, 0, err)
	}
	return nil
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
