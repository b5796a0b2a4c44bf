package shellyws

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shellyws/shellyws/internal/redact"
)

// Run keeps the outbound connection up while ctx lives: it dials the
// configured server, sends NotifyFullStatus, serves requests through the
// Dispatcher, sends notifications, and redials with backoff whenever the
// connection fails or the server closes it. While the component is disabled
// it dials nothing and waits for Restart; enabled without a server it does
// the same, with LastError ErrNoServer and a warning logged.
//
// Run is the device's boot: it starts from the stored config, whatever
// SetConfig stored before it was called, without a Restart.
//
// When the server refuses the handshake with HTTP 429 or 503, or closes a
// connection that had not yet proved healthy (see WithHealthyAfter) with
// 1008 (policy violation) or 1013 (try again later), it asks for a longer
// back-off: the next attempt waits as WithServerBackoff decides (by default
// 60 to 120 s, or the handshake's Retry-After), beyond the normal policy's
// cap, and a warning says so with the wait. A 1008 or 1013 close of a
// connection that had been up longer is an ordinary drop with the normal
// back-off: Home Assistant closes every socket with 1008 when it stops.
// See Reboot for what a reboot does to Run.
//
// Run blocks until ctx ends, then closes the connection with status 1001,
// waits for every goroutine it started (handlers, AfterReply functions and
// callbacks included) and returns nil; no hook or callback is called after
// it returned. It is Start followed by Wait, except that its own goroutine
// does the final wait. It may be called only once, and not during a Wake:
// such a call returns an error wrapping ErrAlreadyRunning.
func (c *Component) Run(ctx context.Context) error {
	r, err := c.start(ctx, true)
	if err != nil {
		return err
	}
	<-r.ended
	r.finish()
	return nil
}

// Start does what Run does without blocking: it returns at once, and the
// connection's life goes on driven by timers and by the process's poller,
// so that a connected device that is idle holds no goroutine (Run's
// goroutine would hold about 8 KiB of stack per device in a fleet). A dial
// runs on a short-lived goroutine of its own, at most one per component
// and bounded by the dial timeout, as does the handling of each
// connection's end; WithOnReboot and WithOnBoot are called on such
// goroutines. Done is closed, and Wait returns, once ctx has ended and
// everything Start began has exited, with Run's guarantees. Start may be
// called only once, and not during a Wake, nor after Run: such a call
// returns an error wrapping ErrAlreadyRunning.
func (c *Component) Start(ctx context.Context) error {
	_, err := c.start(ctx, false)
	return err
}

// Done returns a channel that is closed once the life Start or Run began
// has ended (see Wait); nil before either was called.
func (c *Component) Done() <-chan struct{} {
	c.mu.Lock()
	r := c.runner
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		// Made on demand: a fleet's devices, which no one waits on, hold none.
		r.done = make(chan struct{})
		if r.finished {
			close(r.done)
		}
	}
	return r.done
}

// Wait blocks until the life Start began has ended: ctx ended, the
// connection closed with 1001, and every goroutine it started (handlers,
// AfterReply functions and callbacks included) returned. It returns at once
// if neither Start nor Run was called.
func (c *Component) Wait() {
	if done := c.Done(); done != nil {
		<-done
	}
}

// runner is one Start (or Run) of a component: the outbound connection's
// life as a chain of events (a timer, the restart context, the end of a
// dial or of a connection, the end of ctx), each of which takes the next
// step. Between events it holds no goroutine.
type runner struct {
	c   *Component
	ctx context.Context
	cb  callbackRunner
	// ended is closed by end for Run, whose goroutine then finishes;
	// without Run (nil), end finishes on a goroutine of its own.
	ended chan struct{}

	// wg counts everything that may still take a step: the ctx
	// registration, an armed wait's timer and restart registration, the
	// dial's goroutine, a connection until its end has been handled.
	wg         sync.WaitGroup
	unwatchCtx func() bool

	mu       sync.Mutex
	attempt  int // waits in a row, counted for the backoff policy
	gen      uint64
	then     func(restarted bool) // the armed wait's next step, nil if none
	timer    *time.Timer
	unwait   func() bool // the armed wait's restart registration
	stopping bool        // ctx has ended
	over     bool        // end was called
	// done is Done's channel, made on demand (under mu) and closed by
	// finish, which sets finished.
	done     chan struct{}
	finished bool
	// peer is the session's while its end is not yet being handled:
	// ctxDone stops it (it has no registration on ctx of its own).
	peer *peer
}

// start claims c for Run (blocking) or Start and takes the first step.
func (c *Component) start(ctx context.Context, blocking bool) (*runner, error) {
	if err := c.claimRun(runByRun); err != nil {
		return nil, err
	}
	r := &runner{c: c, ctx: ctx}
	if blocking {
		r.ended = make(chan struct{})
	}
	c.mu.Lock()
	c.runner = r
	c.mu.Unlock()
	c.powerOn()
	r.wg.Add(1)
	r.unwatchCtx = context.AfterFunc(ctx, r.ctxDone)
	r.next()
	return r, nil
}

// next is the top of the connection's life: what to do now.
func (r *runner) next() {
	c := r.c
	if r.ctx.Err() != nil {
		r.end()
		return
	}
	if c.isDown() {
		r.boot()
		return
	}
	cfg, restart := c.activeConfig()
	if !cfg.Enable || cfg.Server == nil {
		var why error
		if cfg.Enable {
			why = ErrNoServer
			c.opts.logger.Warn("shellyws: outbound websocket enabled without a server; waiting for a restart")
		} else {
			c.opts.logger.Debug("shellyws: outbound websocket disabled; waiting for a restart")
		}
		c.state.set(StateDisconnected, why)
		r.wait(-1, restart, r.restarted)
		return
	}
	c.state.set(StateConnecting, nil)
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		r.end()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.connect(cfg, restart)
}

// restarted is the step after a wait that Restart (or Reboot) ended, or
// after a wait for nothing but a restart.
func (r *runner) restarted(bool) {
	r.mu.Lock()
	r.attempt = 0
	r.mu.Unlock()
	r.next()
}

// boot brings the device back after Reboot: the callbacks, the boot time
// and an empty queue.
func (r *runner) boot() {
	c := r.c
	c.state.set(StateDisconnected, nil)
	if f := c.opts.onReboot; f != nil {
		f()
	}
	if d := c.opts.bootTime; d > 0 {
		r.wait(d, nil, r.booted)
		return
	}
	r.booted(false)
}

func (r *runner) booted(bool) {
	c := r.c
	// Emptied again: a notification published while the device was down,
	// or put back by the connection that was dropped, is from before.
	c.queue.clear()
	if f := c.opts.onBoot; f != nil {
		f()
	}
	c.powerOn()
	r.restarted(false)
}

// wait arms the next step: then runs after d (with no timer when d is
// negative), or as soon as restart ends (with none when restart is nil),
// whichever comes first, unless ctx ends before either.
func (r *runner) wait(d time.Duration, restart context.Context, then func(restarted bool)) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		r.end()
		return
	}
	r.gen++
	gen := r.gen
	r.then = then
	if d >= 0 {
		r.wg.Add(1)
		r.timer = time.AfterFunc(d, func() { r.fire(gen, false) })
	}
	if restart != nil {
		r.wg.Add(1)
		r.unwait = context.AfterFunc(restart, func() { r.fire(gen, true) })
	}
	r.mu.Unlock()
}

// fire is an armed wait's event: the first of them takes the step.
func (r *runner) fire(gen uint64, restarted bool) {
	defer r.wg.Done()
	r.mu.Lock()
	if gen != r.gen || r.then == nil {
		r.mu.Unlock()
		return
	}
	then := r.then
	r.disarmLocked()
	r.mu.Unlock()
	then(restarted)
}

// disarmLocked forgets the armed wait, releasing the counts of its events
// that will not run. The caller holds mu.
func (r *runner) disarmLocked() {
	r.then = nil
	if r.timer != nil {
		if r.timer.Stop() {
			r.wg.Done()
		}
		r.timer = nil
	}
	if r.unwait != nil {
		if r.unwait() {
			r.wg.Done()
		}
		r.unwait = nil
	}
}

// ctxDone runs when ctx ends: an armed wait ends the life at once; a dial
// ends with ctx, and a connection is closed with 1001, each then taking
// the step that ends the life.
func (r *runner) ctxDone() {
	defer r.wg.Done()
	r.mu.Lock()
	r.stopping = true
	waiting := r.then != nil
	if waiting {
		r.disarmLocked()
	}
	p := r.peer
	r.mu.Unlock()
	if waiting {
		r.end()
	}
	if p != nil {
		r.stopPeer(p)
	}
}

// stopPeer does for the session's peer what its own registration on ctx
// would: close with 1001 (once it runs), abort closeGrace later.
func (r *runner) stopPeer(p *peer) {
	r.mu.Lock()
	if r.peer != p {
		r.mu.Unlock()
		return // its end is being handled: nothing to stop
	}
	p.wg.Add(1) // before its end is waited for: r.peer is still p
	r.mu.Unlock()
	p.parentDone()
}

// unwatchPeer forgets the session's peer before its end is waited for.
func (r *runner) unwatchPeer() {
	r.mu.Lock()
	r.peer = nil
	r.mu.Unlock()
}

// end ends the life once: Run's goroutine, or one of its own for Start,
// finishes.
func (r *runner) end() {
	r.mu.Lock()
	over := r.over
	r.over = true
	r.mu.Unlock()
	if over {
		return
	}
	if r.ended != nil {
		close(r.ended)
		return
	}
	go r.finish()
}

// finish waits for everything the life started, then closes done.
func (r *runner) finish() {
	if r.unwatchCtx() {
		r.wg.Done()
	}
	r.wg.Wait()
	r.cb.wait()
	r.c.state.set(StateClosed, nil)
	r.mu.Lock()
	r.finished = true
	if r.done != nil {
		close(r.done)
	}
	r.mu.Unlock()
}

// connect makes one connection attempt, on a goroutine of its own counted
// in wg: the dial and NotifyFullStatus. The connection is then served
// without it, and its end handled by connEnded.
func (r *runner) connect(cfg Config, restart context.Context) {
	defer r.wg.Done()
	c := r.c
	server := *cfg.Server
	log := c.opts.logger.With("server", redact.URL(server))
	// A Restart or Reboot abandons the dial, which would otherwise open a
	// connection with the config being replaced.
	dialCtx, cancelDial := context.WithCancel(r.ctx)
	c.watchRestart(restart, restartWatch{cancelDial: cancelDial})
	conn, status, hdr, err := c.dial(dialCtx, cfg)
	c.unwatchRestart()
	cancelDial()
	if err != nil {
		a := attempt{server: server, restart: restart}
		switch {
		case r.ctx.Err() != nil:
		case restart.Err() != nil:
			a.restarted = true
		default:
			c.dialFailed(log, server, status, err)
			a.serverBusy, a.retryAfter = serverAsksBackoff(status, hdr)
			a.busyWhy = busyWhy(status, err)
		}
		r.after(a)
		return
	}
	s := c.newSession(r.ctx, conn, server, log, true)
	r.mu.Lock()
	stopping := r.stopping
	if !stopping {
		r.peer = s.peer // ctxDone stops it from now on
	}
	r.mu.Unlock()
	if stopping {
		s.abandon()
		r.after(attempt{})
		return
	}
	start := c.opts.clock() // WithClock's: "ts" may jump when the boot clock is set
	if err := s.sendFullStatus(); err != nil {
		r.unwatchPeer() // before the wait for its goroutines
		s.abandon()
		c.dialFailures.Add(1)
		c.state.set(StateDisconnected, err)
		r.after(attempt{server: server, restart: restart, serverBusy: closeAsksBackoff(err, false), busyWhy: busyWhy(0, err)})
		return
	}
	s.opened(&r.cb)
	c.watchRestart(restart, restartWatch{p: s.peer})
	r.wg.Add(1) // until connEnded returns
	s.peer.start(func() { go r.connEnded(s, start, restart) }, stopOn{r.ctx, endShutdown})
}

// connEnded handles the end of a connection, on a goroutine of its own:
// Closed, which calls it, runs on the poller and must not wait.
func (r *runner) connEnded(s *session, start time.Time, restart context.Context) {
	defer r.wg.Done()
	c := r.c
	r.unwatchPeer()
	end := s.peer.wind(nil)
	c.unwatchRestart()
	cause, restarted := s.cause(end, r.ctx)
	c.disconnected(s.peer, cause, cause, &r.cb)
	if r.ctx.Err() == nil {
		s.log.Warn("shellyws: disconnected", "err", cause)
	}
	healthy := c.opts.clock().Sub(start) >= c.opts.healthyAfter
	r.after(attempt{
		server:     s.server,
		restart:    restart,
		healthy:    healthy,
		restarted:  restarted,
		serverBusy: closeAsksBackoff(cause, healthy),
		busyWhy:    busyWhy(0, cause),
	})
}

// after takes the step after a connection attempt: at once after a
// Restart or Reboot, otherwise after the back-off, or the longer one the
// server asked for.
func (r *runner) after(a attempt) {
	c := r.c
	if r.ctx.Err() != nil {
		r.end()
		return
	}
	if a.restarted {
		r.restarted(true)
		return
	}
	var delay time.Duration
	if a.serverBusy {
		delay = c.opts.serverBackoff(a.retryAfter)
		// At the default level: a device silent for minutes must say why.
		c.opts.logger.Warn(fmt.Sprintf("shellyws: server asked to back off (%s): retrying in %v", a.busyWhy, delay.Round(time.Millisecond)),
			"server", redact.URL(a.server), "retry_after", a.retryAfter)
	} else {
		r.mu.Lock()
		if a.healthy {
			r.attempt = 0
		}
		r.attempt++
		attempt := r.attempt
		r.mu.Unlock()
		delay = c.nextDelay(attempt)
		c.opts.logger.Info("shellyws: reconnecting", "in", delay)
	}
	r.wait(delay, a.restart, r.retry)
}

// retry is the step after a back-off: a restart during it starts the
// count of waits again.
func (r *runner) retry(restarted bool) {
	if restarted {
		r.restarted(true)
		return
	}
	r.next()
}
