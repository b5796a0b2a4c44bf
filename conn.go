package shellyws

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/bpool"
	"github.com/shellyws/shellyws/internal/evws"
	"github.com/shellyws/shellyws/internal/frame"
)

// nextDelay is the backoff policy's wait before the attempt-th retry in a
// row. It never lets a policy give up: a device retries for ever.
func (c *Component) nextDelay(attempt int) time.Duration {
	if d := c.opts.backoff(attempt); d >= 0 {
		return d
	}
	return maxBackoff
}

// Bounds of the server-requested back-off (protocol section 12).
const (
	serverBackoffMin      = 60 * time.Second
	serverBackoffMax      = 120 * time.Second
	maxRetryAfter         = 300 * time.Second
	retryAfterRandomizing = 0.2
)

// DefaultServerBackoff is the wait after the server asked for a longer
// back-off (protocol section 12): retryAfter, the Retry-After of a refused
// handshake capped at 300 s, plus up to 20 % at random; or, when retryAfter
// is 0 (none was sent), 60 s plus up to 60 s at random, so that devices
// behind one address do not come back together.
func DefaultServerBackoff(retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		d := min(retryAfter, maxRetryAfter)
		return d + time.Duration(rand.Int64N(int64(float64(d)*retryAfterRandomizing)+1))
	}
	return serverBackoffMin + time.Duration(rand.Int64N(int64(serverBackoffMax-serverBackoffMin)+1))
}

// serverAsksBackoff reports whether a refused handshake's status asks for
// a longer back-off, with the wait its Retry-After (whole seconds) gives.
func serverAsksBackoff(status int, hdr http.Header) (bool, time.Duration) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return false, 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(hdr.Get("Retry-After")), 10, 64)
	if err != nil || n <= 0 {
		return true, 0 // absent, an HTTP date or nonsense: the default wait
	}
	return true, time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
}

// closeAsksBackoff reports whether the close status the server sent asks
// for a longer back-off: 1008 or 1013 of a connection that had not proved
// healthy. Of one that had, it is an ordinary drop (section 12, revised).
func closeAsksBackoff(err error, healthy bool) bool {
	if healthy {
		return false
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusPolicyViolation, websocket.StatusTryAgainLater:
		return true
	}
	return false
}

// busyWhy says what asked for the back-off, for the log: "close 1013",
// "HTTP 429".
func busyWhy(httpStatus int, err error) string {
	if httpStatus != 0 {
		return "HTTP " + strconv.Itoa(httpStatus)
	}
	return "close " + strconv.Itoa(int(websocket.CloseStatus(err)))
}

// attempt is how one connection attempt ended.
type attempt struct {
	// healthy: it stayed up long enough to reset the backoff.
	healthy bool
	// restarted: it ended because of Restart or Reboot.
	restarted bool
	// serverBusy: the server asked for a longer back-off; retryAfter is
	// the wait its Retry-After gave, or 0; busyWhy is how it asked.
	serverBusy bool
	retryAfter time.Duration
	busyWhy    string
	// server is the URL dialled; restart, the restart context the attempt
	// began with, ends the wait after it.
	server  string
	restart context.Context
}

// dialFailed records a dial that failed and returns why.
func (c *Component) dialFailed(log *slog.Logger, server string, status int, err error) *ConnError {
	cerr := c.connError("dial", server, status, err)
	c.dialFailures.Add(1)
	c.state.set(StateDisconnected, cerr)
	log.Warn("shellyws: dial failed", "err", cerr, "http_status", status)
	return cerr
}

// session is the outbound connection: a peer whose notifications are
// the component's own queue, opened by NotifyFullStatus.
type session struct {
	*peer
	server string
}

// newSession wraps a dialled connection as the outbound session; parent
// bounds it (Run's context, or a wake's), watched as newPeer says.
func (c *Component) newSession(parent context.Context, conn *evws.Conn, server string, log *slog.Logger, watched bool) *session {
	s := &session{peer: newPeer(parent, c, conn, log, c.queue, watched), server: server}
	s.peer.channel = ChannelOutbound
	s.peer.dst.Store(new(outboundDst))
	return s
}

// open sends NotifyFullStatus and makes the session the device's live
// connection. If the frame cannot go out, the connection is dropped and the
// error returned.
func (s *session) open(cb *callbackRunner) error {
	// NotifyFullStatus goes first, before any response, and reading starts
	// only once the state is connected, so a request the server sent the
	// instant the handshake finished waits in the socket and then sees
	// Ws.GetStatus report connected.
	if err := s.sendFullStatus(); err != nil {
		s.abandon()
		return err
	}
	s.opened(cb)
	return nil
}

// abandon drops a session that never ran and waits for what it started.
func (s *session) abandon() {
	s.conn.Drop()
	s.finish()
}

// opened makes the session, its NotifyFullStatus sent, the device's live
// connection.
func (s *session) opened(cb *callbackRunner) {
	s.c.connects.Add(1)
	s.c.state.set(StateConnected, nil)
	s.log.Info("shellyws: connected")
	if f := s.c.opts.onConnect; f != nil {
		cb.post(f)
	}
	s.c.live.Store(s.peer)
}

// disconnected records the end of the outbound connection p: it is no
// longer live, it counts in Stats, the state says lastErr and the
// WithOnDisconnect callback hears cause. Run and Wake share it.
func (c *Component) disconnected(p *peer, cause *ConnError, lastErr error, cb *callbackRunner) {
	c.live.CompareAndSwap(p, nil)
	c.disconnects.Add(1)
	c.state.set(StateDisconnected, lastErr)
	if f := c.opts.onDisconnect; f != nil {
		cb.post(func() { f(cause) })
	}
}

// cause is why the session ended, given its peer's end and its parent,
// and whether Restart or Reboot ended it.
func (s *session) cause(end peerEnd, parent context.Context) (cause *ConnError, restarted bool) {
	switch {
	case end.reason == endReboot:
		return s.c.connError("reboot", s.server, 0, ErrRebooted), true
	case end.reason == endRestart:
		return s.c.connError("restart", s.server, 0, ErrRestarted), true
	case end.reason == endShutdown || parent.Err() != nil:
		return s.c.connError("shutdown", s.server, 0, context.Cause(parent)), false
	}
	return s.c.connError(end.op, s.server, 0, end.err), false
}

func (s *session) sendFullStatus() error {
	// Only an abort ends s.ctx before run; it cancels this context too
	// (see abort), without a child registered on s.ctx.
	ctx, cancel := context.WithTimeout(context.Background(), s.c.opts.writeTimeout)
	defer cancel()
	s.mu.Lock()
	s.statusCancel = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.statusCancel = nil
		s.mu.Unlock()
	}()
	if s.ctx.Err() != nil { // aborted before statusCancel was set
		cancel()
	}
	params, err := s.c.fullStatusParams(ctx)
	if err != nil {
		s.closeWith(websocket.StatusInternalError, "no status")
		return s.c.connError("status", s.server, 0, err)
	}
	bp := bpool.Get()
	defer bpool.Put(bp)
	*bp = frame.AppendNotification(*bp, s.c.id, outboundDst, methodNotifyFullStatus, params)
	if err := s.conn.Write(*bp); err != nil {
		var we *evws.WriteError
		if errors.As(err, &we) {
			err = we.Err
		}
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
