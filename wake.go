package shellyws

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shellyws/shellyws/internal/bpool"
	"github.com/shellyws/shellyws/internal/frame"
	"github.com/shellyws/shellyws/internal/redact"
)

// ErrAsleep is the cause of an outbound connection closed because the
// device fell asleep at the end of a wake: OnDisconnect receives a
// *ConnError with Op "sleep" that wraps it, so errors.Is(err, ErrAsleep)
// tells a sleep from a failure. A sleep is not recorded in LastError.
var ErrAsleep = errors.New("shellyws: asleep")

// Defaults of the wake cycle, documented on the options that set them.
const (
	defaultAwakeIdle = 3 * time.Second
	defaultAwakeMax  = 60 * time.Second
)

// maxWakeDials is the outbound dial attempts of one wake: one and at most
// one retry. A battery device does not back off; it sleeps.
const maxWakeDials = 2

// WithAwakeIdle sets how long a wake stays up after the last request was
// answered, on any channel (the outbound connection or a Handler), or after
// its first notifications went out when nobody asks anything; zero or
// negative makes New fail. Default: 3 s.
func WithAwakeIdle(d time.Duration) Option { return func(o *options) { o.awakeIdle = d } }

// WithAwakeMax caps one wake, however busy: at the cap the device sleeps
// even with requests in flight or a HoldAwake held, so a chatty server
// cannot drain the battery; zero or negative makes New fail. Default: 60 s.
func WithAwakeMax(d time.Duration) Option { return func(o *options) { o.awakeMax = d } }

// WithBootClock makes notification timestamps ("ts") seconds since boot,
// e.g. "ts":3.10, until SetClockSynced says the clock is set, as a device
// whose clock is not yet synchronised sends them. Every wake is a boot: the
// count restarts at each Wake and the clock is unset again. The real clock
// (WithClock) is used once it is set. Default: off, "ts" is always the real
// clock.
func WithBootClock() Option { return func(o *options) { o.bootClock = true } }

// WakeEnd is why a wake ended.
type WakeEnd int

// Why Wake returned.
const (
	// WakeIdle: no request for the idle time (WithAwakeIdle); the device
	// fell asleep.
	WakeIdle WakeEnd = iota
	// WakeCapped: the wake reached its cap (WithAwakeMax); the device fell
	// asleep.
	WakeCapped
	// WakeInterrupted: InterruptWake or Reboot ended it; no sleep event
	// was sent.
	WakeInterrupted
	// WakeCanceled: Wake's context ended; no sleep event was sent.
	WakeCanceled
)

// String returns the reason's name in lower case.
func (e WakeEnd) String() string {
	switch e {
	case WakeIdle:
		return "idle"
	case WakeCapped:
		return "capped"
	case WakeInterrupted:
		return "interrupted"
	case WakeCanceled:
		return "canceled"
	}
	return "unknown"
}

// Slept reports whether the wake ended by falling asleep (idle or capped).
func (e WakeEnd) Slept() bool { return e == WakeIdle || e == WakeCapped }

// WakeResult describes one wake.
type WakeResult struct {
	// End is why the wake ended.
	End WakeEnd
	// Dials is how many times the wake dialled its server: 0 when the
	// config is disabled or has no server, otherwise 1 or 2.
	Dials int
	// Connected reports whether an outbound connection came up (its
	// NotifyFullStatus sent) during the wake.
	Connected bool
	// SleepSent reports whether the sleep event went out on the outbound
	// connection before it was closed.
	SleepSent bool
	// Requests counts the requests dispatched during the wake, on every
	// channel.
	Requests uint64
	// Awake is how long the wake lasted.
	Awake time.Duration
	// Err is the wake's last outbound failure (a failed dial, a dropped
	// connection), nil if there was none. Server URLs in it are redacted.
	Err error
}

// Wake runs one wake of a sleeping (battery) device and returns when the
// device should sleep. Every wake is a boot: it starts from the stored
// config (a Ws.SetConfig stored during one wake is in force at the next,
// with or without Restart), and with WithBootClock the clock is unset again.
//
// If the config is enabled and has a server, Wake dials at once, with no
// back-off wait, and sends NotifyFullStatus first, then the notifications
// queued before the wake. A failed dial, or a connection lost during the
// wake, is retried once at once, unless the server asked for a longer
// back-off (a handshake refused with 429 or 503, a close with 1008 or 1013
// of a connection not yet healthy; see Run): the next wake is the retry
// then. Nothing more is dialled in this wake, but
// the wake goes on: a Handler's inbound channel answers, so a device
// pointed at a wrong server can still be re-pointed.
//
// The device stays awake while requests arrive on any channel: until no
// request has been in flight for the idle time (WithAwakeIdle), counted
// from the last answer, or from the end of the dial and first notifications
// when nobody asks anything, and never past the cap (WithAwakeMax). A
// HoldAwake keeps it awake past the idle time, up to the cap.
//
// At the end Wake sends NotifyEvent {"component":"sys","event":"sleep",
// "ts":…} on the outbound connection, closes it with status 1000, closes
// every inbound websocket client of the component's Handlers with 1000,
// empties the notification queue (deep sleep loses RAM; the next wake's
// NotifyFullStatus is the state) and returns with the state StateAsleep.
// While asleep the component dials nothing and its Handlers answer 503
// "Asleep"; the embedder should also stop listening. InterruptWake and ctx
// end a wake at once without the sleep event, and so does Reboot, which
// drops the connections without a close frame (see Reboot). Restart during
// a wake changes nothing before the next wake, which boots with the stored
// config anyway. A Shelly.Reboot handler with a delay takes HoldAwake for
// it and then calls Reboot or InterruptWake.
//
// Wake returns after every goroutine it started has ended, callbacks
// included; nothing of the component runs while it sleeps. Its error is
// ctx's when ctx ended the wake, or one wrapping ErrAlreadyRunning when Run
// was called or another Wake is running; Run and Wake never run at once.
//
// The period between wakes is the embedder's: it counts from falling
// asleep, i.e. from Wake's return. A simulator with many devices should
// schedule the next wake with time.AfterFunc rather than a sleeping
// goroutine, so that a sleeping device holds no goroutine at all.
func (c *Component) Wake(ctx context.Context) (WakeResult, error) {
	if err := c.claimRun(runByWake); err != nil {
		return WakeResult{}, err
	}
	defer c.running.Store(notRunning)
	idle, maxAwake := c.opts.awakeIdle, c.opts.awakeMax
	start := time.Now()
	w := &c.wake
	requests := w.requests.Load()
	run := c.beginWake(ctx, start.Add(maxAwake))
	cb := &callbackRunner{}
	var res WakeResult

	cfg := c.bootConfig()
	var oc *wakeConn
	backOff := false // the server asked for a longer wait: this wake dials no more
	dial := func() {
		if !cfg.Enable || cfg.Server == nil {
			return
		}
		for res.Dials < maxWakeDials && !backOff && run.ctx.Err() == nil {
			res.Dials++
			conn, err := c.wakeConnect(run, cfg, cb)
			if err == nil {
				oc, res.Connected = conn, true
				return
			}
			if run.ctx.Err() == nil {
				res.Err = err
			}
			backOff = asksForBackoff(err, false)
		}
	}
	dial()
	if res.Dials == 0 {
		c.opts.logger.Debug("shellyws: awake; outbound websocket disabled or without server")
	}
	floor := mono() // nobody asked anything yet: idle counts from here

	idleTimer := time.NewTimer(idle)
	defer idleTimer.Stop()
	end := WakeIdle
wait:
	for {
		var connDone <-chan struct{}
		if oc != nil {
			connDone = oc.done
		}
		select {
		case <-run.ctx.Done():
			end = run.why(ctx)
			break wait
		case <-connDone:
			healthy := c.opts.clock().Sub(oc.start) >= c.opts.healthyAfter
			res.Err = c.wakeConnLost(oc, cb)
			backOff = backOff || asksForBackoff(res.Err, healthy)
			oc = nil
			dial()
			floor = max(floor, mono())
		case <-run.recheck:
		case <-idleTimer.C:
		}
		left := c.idleLeft(idle, floor, oc != nil)
		if left <= 0 {
			break wait
		}
		idleTimer.Reset(left)
	}

	if oc != nil {
		switch end {
		case WakeIdle, WakeCapped:
			res.SleepSent = c.sleepOutbound(oc, cb)
		case WakeInterrupted:
			c.endOutbound(oc, endReboot, c.connError("reboot", oc.server, 0, ErrRebooted), cb)
		default:
			c.endOutbound(oc, endShutdown, c.connError("shutdown", oc.server, 0, context.Cause(ctx)), cb)
		}
	}
	res.End = end
	res.Requests = w.requests.Load() - requests
	res.Awake = time.Since(start)
	c.endWake(run, end)
	c.opts.logger.Info("shellyws: asleep", "end", end, "awake", res.Awake)
	cb.wait()
	if end == WakeCanceled {
		return res, ctx.Err()
	}
	return res, nil
}

// HoldAwake keeps the device awake past its idle time until release is
// called, up to the cap of the wake (WithAwakeMax). A Shelly.Reboot
// handler takes it for the delay before the reboot, which then ends the
// wake with InterruptWake and releases the hold:
//
//	release := c.HoldAwake()
//	time.AfterFunc(delay, func() { c.InterruptWake(); release() })
//
// A hold taken between wakes holds the next one. The idle time counts
// again from the release. release may be called more than once; only the
// first call counts.
func (c *Component) HoldAwake() (release func()) {
	w := &c.wake
	w.holds.Add(1)
	var done atomic.Bool
	return func() {
		if !done.CompareAndSwap(false, true) {
			return
		}
		w.lastAnswer.Store(mono()) // before the hold goes, so the idle check sees it
		w.holds.Add(-1)
		w.mu.Lock()
		r := w.cur
		w.mu.Unlock()
		if r != nil {
			select {
			case r.recheck <- struct{}{}:
			default:
			}
		}
	}
}

// InterruptWake ends the wake under way at once, as a reboot or a power
// cut does (protocol section 11): no sleep event, the outbound connection
// and the inbound websocket clients dropped without a close frame, as
// Reboot drops them, and Wake returns with WakeInterrupted. The embedder then waits
// its boot time and calls Wake again, which dials at once. It reports
// whether a wake was under way.
func (c *Component) InterruptWake() bool { return c.interruptWake(false) }

// interruptWake ends the wake under way; reboot says Reboot ends it and
// has already taken the power down.
func (c *Component) interruptWake(reboot bool) bool {
	w := &c.wake
	w.mu.Lock()
	r := w.cur
	w.mu.Unlock()
	if r == nil {
		return false
	}
	r.interrupted.Store(true)
	if !reboot {
		// Inbound clients watch the power context: cut it, as Reboot
		// does, and turn it on again at once (Run, the only other user,
		// is not running during a wake). Reboot cut it already and keeps
		// it off until the next wake boots.
		c.mu.Lock()
		c.cutPowerLocked()
		if c.down {
			c.power = poweredOff // a Reboot's boot is still to come
		}
		c.mu.Unlock()
	}
	r.cancel()
	return true
}

// SetClockSynced tells the component that the device's clock is set (e.g.
// by SNTP): from now until the next wake, "ts" is the real clock. Without
// WithBootClock it changes nothing.
func (c *Component) SetClockSynced() { c.wake.clockSet.Store(true) }

// ClockSet reports whether "ts" is real time: always true without
// WithBootClock; with it, after SetClockSynced in the current wake. A
// device reports "time" and "unixtime" as null in its sys status while it
// is false.
func (c *Component) ClockSet() bool { return !c.opts.bootClock || c.wake.clockSet.Load() }

// SinceBoot returns the time since the device booted: since New, or since
// the start of the current or last wake (every wake is a boot). It is what
// a device reports as sys.uptime.
func (c *Component) SinceBoot() time.Duration {
	return time.Duration(mono() - c.wake.boot.Load())
}

// wakeState is the component's part in the wake cycle. The request
// counters are kept by dispatch on every channel, in Run too.
type wakeState struct {
	inflight   atomic.Int64
	lastAnswer atomic.Int64 // mono() when the last request was answered
	requests   atomic.Uint64
	holds      atomic.Int64
	boot       atomic.Int64 // mono() at the last boot
	clockSet   atomic.Bool

	wakes, sleeps atomic.Uint64

	mu  sync.Mutex
	cur *wakeRun // the wake under way, nil between wakes
	// before ends inbound clients accepted before the first wake with
	// the end of that wake; made on demand, nil once a wake ended.
	before    context.Context
	endBefore context.CancelFunc
	woken     bool // a wake has ended
}

// wakeRun is one wake under way.
type wakeRun struct {
	// ctx ends at the cap, with Wake's context or on InterruptWake: it
	// bounds dials.
	ctx         context.Context
	cancel      context.CancelFunc
	interrupted atomic.Bool
	// done ends when the wake does: inbound websocket clients close then,
	// or drop when its cause is errRebooting (an interrupted wake).
	done    context.Context
	end     context.CancelCauseFunc
	recheck chan struct{} // a hold was released
}

func (r *wakeRun) why(parent context.Context) WakeEnd {
	switch {
	case r.interrupted.Load():
		return WakeInterrupted
	case parent.Err() != nil:
		return WakeCanceled
	}
	return WakeCapped
}

func (w *wakeState) requestStarted() {
	w.requests.Add(1)
	w.inflight.Add(1)
}

func (w *wakeState) requestDone() {
	w.lastAnswer.Store(mono()) // before inflight drops, so the idle check sees it
	w.inflight.Add(-1)
}

// initWake is called by New: the boot is now, and WithBootClock puts the
// boot clock in front of the real one.
func (c *Component) initWake() {
	c.wake.boot.Store(mono())
	c.opts.clock = c.opts.now // nonce lifetimes and lockouts age on it, not on the boot clock
	if c.opts.bootClock {
		real := c.opts.now
		c.opts.now = func() time.Time {
			if c.wake.clockSet.Load() {
				return real()
			}
			// appendTS writes Unix seconds: from the epoch, that is the
			// time since boot.
			return time.Unix(0, 0).Add(c.SinceBoot())
		}
	}
}

// beginWake boots the device: a Reboot is over, the clock restarts, and
// the component is awake (no longer StateAsleep) from here on.
func (c *Component) beginWake(parent context.Context, capAt time.Time) *wakeRun {
	c.powerOn()
	r := &wakeRun{recheck: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithDeadline(parent, capAt)
	r.done, r.end = context.WithCancelCause(context.Background())
	w := &c.wake
	w.boot.Store(mono())
	w.clockSet.Store(false)
	w.wakes.Add(1)
	w.mu.Lock()
	w.cur = r
	c.state.set(StateDisconnected, nil)
	w.mu.Unlock()
	c.opts.logger.Info("shellyws: awake")
	return r
}

// endWake puts the device to sleep: no more inbound clients, nothing kept.
func (c *Component) endWake(r *wakeRun, end WakeEnd) {
	w := &c.wake
	w.mu.Lock()
	w.cur = nil
	c.state.set(StateAsleep, nil)
	w.woken = true
	endBefore := w.endBefore
	w.before, w.endBefore = nil, nil
	w.mu.Unlock()
	if endBefore != nil {
		endBefore()
	}
	var cause error
	if r.interrupted.Load() {
		cause = errRebooting // clients drop, whichever stop reaches them first
	}
	r.end(cause)
	r.cancel()
	c.queue.clear()
	if end.Slept() {
		w.sleeps.Add(1)
	}
}

// bootConfig applies the stored config, as a boot does, and returns it.
func (c *Component) bootConfig() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = c.stored.Clone()
	return c.active.Clone()
}

// asleep reports whether the device sleeps between two wakes; its inbound
// channels answer nothing then.
func (c *Component) asleep() bool { return c.State() == StateAsleep }

// wakeDone returns what ends an inbound websocket client accepted now: the
// end of the wake under way, an ended context while asleep, the end of the
// first wake before there was one (a context that never ends on a device
// that only runs Run), or nil once Wake is over and Run rules.
func (c *Component) wakeDone() context.Context {
	w := &c.wake
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.cur != nil:
		return w.cur.done
	case c.asleep():
		return endedCtx
	case w.woken:
		return nil
	}
	if w.before == nil {
		w.before, w.endBefore = context.WithCancel(context.Background())
	}
	return w.before
}

var endedCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// idleLeft returns how long the device may still stay awake for want of
// requests; connected says whether the outbound connection is up.
func (c *Component) idleLeft(idle time.Duration, floor int64, connected bool) time.Duration {
	w := &c.wake
	if w.holds.Load() > 0 || w.inflight.Load() > 0 {
		return idle
	}
	if connected {
		if queued, _ := c.queue.stats(); queued > 0 {
			return idle // notifications are still going out
		}
	}
	last := max(w.lastAnswer.Load(), floor)
	return idle - time.Duration(mono()-last)
}

// wakeConn is the outbound connection of a wake, served on a goroutine of
// its own while the wake's goroutine watches the time.
type wakeConn struct {
	p      *peer
	server string
	start  time.Time     // when it came up, on WithClock's clock
	done   chan struct{} // closed when the peer has ended
	end    peerEnd       // why; read after done
}

// wakeConnect dials once and, if that works, sends NotifyFullStatus and
// starts serving the connection.
func (c *Component) wakeConnect(r *wakeRun, cfg Config, cb *callbackRunner) (*wakeConn, error) {
	server := *cfg.Server
	log := c.opts.logger.With("server", redact.URL(server))
	c.state.set(StateConnecting, nil)
	conn, status, _, err := c.dial(r.ctx, cfg)
	if err != nil {
		return nil, c.dialFailed(log, server, status, err)
	}
	// r.ctx as parent: past the cap a stalled connection is cut off after
	// closeGrace.
	s := c.newSession(r.ctx, conn, server, log, false)
	start := c.opts.clock() // up from the full status on, as Run counts it
	if err := s.open(cb); err != nil {
		c.dialFailures.Add(1)
		c.state.set(StateDisconnected, err)
		log.Warn("shellyws: connection failed", "err", err)
		return nil, err
	}
	oc := &wakeConn{p: s.peer, server: server, start: start, done: make(chan struct{})}
	go func() {
		defer close(oc.done)
		oc.end = oc.p.run() // the wake ends it with stopWith
	}()
	return oc, nil
}

// asksForBackoff reports whether err is the server asking for a longer
// wait (protocol section 12): a close with 1008 or 1013 of a connection
// that had not proved healthy, or a handshake refused with 429 or 503. A
// sleeping device does not wait for it, nor retry into it: it sleeps, and
// its next wake is the retry.
func asksForBackoff(err error, healthy bool) bool {
	var cerr *ConnError
	if !errors.As(err, &cerr) {
		return false
	}
	if asks, _ := serverAsksBackoff(cerr.HTTPStatus, nil); asks {
		return true
	}
	return closeAsksBackoff(cerr.Err, healthy)
}

// wakeConnLost records a connection that ended on its own during a wake.
func (c *Component) wakeConnLost(oc *wakeConn, cb *callbackRunner) error {
	cause := c.connError(oc.end.op, oc.server, 0, oc.end.err)
	c.disconnected(oc.p, cause, cause, cb)
	c.opts.logger.Warn("shellyws: disconnected", "server", redact.URL(oc.server), "err", cause)
	return cause
}

// sleepOutbound sends what is queued and the sleep event, then closes the
// connection with 1000. It reports whether the sleep event went out.
func (c *Component) sleepOutbound(oc *wakeConn, cb *callbackRunner) bool {
	p := oc.p
	sent := p.flushQueue() == nil && c.writeSleepEvent(p) == nil
	c.endOutbound(oc, endSleep, c.connError("sleep", oc.server, 0, ErrAsleep), cb)
	return sent
}

func (c *Component) writeSleepEvent(p *peer) error {
	bp := bpool.Get()
	defer bpool.Put(bp)
	*bp = frame.AppendNotification(*bp, c.id, outboundDst, methodNotifyEvent, sleepParams(c.opts.now()))
	p.flushMu.Lock() // after every notification a flusher is writing
	defer p.flushMu.Unlock()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	return p.conn.Write(*bp)
}

// sleepParams encodes the params of the sleep event, with the keys in the
// order NotifyEvent writes them.
func sleepParams(now time.Time) []byte {
	buf := make([]byte, 0, 96)
	buf = append(buf, `{"ts":`...)
	buf = appendTS(buf, now)
	buf = append(buf, `,"events":[{"component":"sys","event":"sleep","ts":`...)
	buf = appendTS(buf, now)
	return append(buf, `}]}`...)
}

// endOutbound closes the wake's connection with code, waits for it and
// reports cause, unless the connection had failed on its own first.
func (c *Component) endOutbound(oc *wakeConn, why stopReason, cause *ConnError, cb *callbackRunner) {
	oc.p.stopWith(peerEnd{reason: why})
	<-oc.done
	if oc.end.reason == endFailed {
		c.wakeConnLost(oc, cb)
		return
	}
	var lastErr error
	if !errors.Is(cause, ErrAsleep) {
		lastErr = cause // a sleep is not a failure
	}
	c.disconnected(oc.p, cause, lastErr, cb)
}
