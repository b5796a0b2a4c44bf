package evws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// StatusCode and CloseError are coder/websocket's, so that a caller that
// runs both transports sees one set of close codes and errors.
type (
	StatusCode = websocket.StatusCode
	CloseError = websocket.CloseError
)

// Errors a connection ends with, besides a *CloseError from the server and
// the socket's own errors.
var (
	// ErrClosed: Close or Drop ended the connection.
	ErrClosed = errors.New("evws: connection closed")
	// ErrNoPong: the keepalive's ping got no answer in time.
	ErrNoPong = errors.New("evws: no pong")
	// ErrProtocol: the server broke RFC 6455; the connection was closed with 1002.
	ErrProtocol = errors.New("evws: protocol error")
)

// Handler receives a connection's events. Its methods are called one at a
// time per connection, on the poller or the connection's reading
// goroutine, and must return quickly without writing: the poller reads
// every connection. Work a message asks for goes through Conn.Go.
type Handler interface {
	// Message is a complete data message; data is valid only during the
	// call. PauseRead called here stops reading after this message.
	Message(c *Conn, text bool, data []byte)
	// Closed is the last call: the connection is closed and its socket
	// released. err is why: ErrClosed after Close or Drop, a *CloseError
	// when the server closed, ErrNoPong, an error wrapping
	// websocket.ErrMessageTooBig or ErrProtocol, a *WriteError when a
	// write failed, or the socket's error.
	Closed(c *Conn, err error)
}

// Options configure connections. One value may serve a whole fleet: each
// connection keeps a pointer to it, so it must not change once used.
type Options struct {
	// Subprotocol is requested in the handshake; a server that does not
	// echo it is accepted, one that names another is not.
	Subprotocol string
	// NetDial opens the TCP connection; nil means a net.Dialer with a 30 s
	// TCP keepalive. A conn it returns is read through its file descriptor
	// when it offers SyscallConn, so such a wrapper must not change bytes.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReadLimit is the largest message accepted; a larger one closes the
	// connection with 1009. Default 1 MiB.
	ReadLimit int64
	// WriteTimeout bounds each frame written. Default 10 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds the close handshake Close waits for. Default 1 s.
	CloseTimeout time.Duration
	// PingInterval: with nothing read for this long and a grain (1/256
	// of it, at most 100 ms), the connection sends a ping; 0 turns the
	// keepalive off.
	PingInterval time.Duration
	// PingTimeout: with nothing read this long after the ping, the
	// connection fails with ErrNoPong. Default PingInterval.
	PingTimeout time.Duration
	// Poller reads the connections; nil means the process's shared one.
	Poller *Poller
	// Goroutine reads every connection on a goroutine of its own, as on
	// systems without a poller.
	Goroutine bool
}

const (
	defaultReadLimit    = 1 << 20
	defaultWriteTimeout = 10 * time.Second
	defaultCloseTimeout = time.Second
)

func (o *Options) readLimit() int64 { return positiveOr(o.ReadLimit, defaultReadLimit) }

func (o *Options) writeTimeout() time.Duration {
	return positiveOr(o.WriteTimeout, defaultWriteTimeout)
}

func (o *Options) closeTimeout() time.Duration {
	return positiveOr(o.CloseTimeout, defaultCloseTimeout)
}

func (o *Options) pingTimeout() time.Duration { return positiveOr(o.PingTimeout, o.PingInterval) }

// positiveOr is v if it is set (positive), else def: a zero Options
// field means its default.
func positiveOr[T int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Conn is one client websocket. Write, Close and Drop may be called from
// any goroutine.
type Conn struct {
	o   *Options
	nc  net.Conn
	tc  *tls.Conn // nil for ws://
	tio *tlsIO    // tc's transport
	rc  syscall.RawConn
	p   *Poller // nil when read by a goroutine
	fd  int32
	gen int32
	h   Handler

	subprotocol string

	// wmu makes one frame writer at a time. spill is the unwritten rest of
	// a frame the poller began without blocking; whoever holds wmu next
	// writes it first.
	wmu   sync.Mutex
	spill *[]byte
	// deadline bounds the frame being written (Unix ns), 0 when none is.
	deadline atomic.Int64
	// Control frames owed, written by whoever holds wmu next: the latest
	// pong, and the keepalive's ping.
	owedPong atomic.Pointer[[]byte]
	owedPing atomic.Pointer[[]byte]

	// Read state, owned by the reading goroutine (the poller's or the
	// connection's). pending holds the bytes of an incomplete frame, or
	// of frames not yet delivered while paused; msg the fragments of a
	// message so far.
	pending *[]byte
	msg     *[]byte
	msgOp   opcode

	lastRead atomic.Int64 // mono() when bytes last arrived
	pingAt   atomic.Int64 // mono() of the unanswered ping, or 0
	timer    *time.Timer
	paused   atomic.Bool

	gone    atomic.Bool // the socket is closed: the reader stops
	discard atomic.Bool // the connection failed: what still arrives is dropped
	// hup is set when the poller saw the other side hang up: reading goes
	// on past a short read, to the end, which came with the last bytes.
	hup atomic.Bool

	mu      sync.Mutex
	started bool          // Start was called on a live connection: Closed is owed
	ending  bool          // ended or closing: no data frame goes out or in
	closing bool          // Close sent its frame and waits for the server's
	down    bool          // the socket is closed
	cause   error         // why it ended
	downCh  chan struct{} // closed when down; made by Close or a reader goroutine
	resumeC chan struct{} // wakes a paused reader goroutine
}

// epoch is the origin of mono.
var epoch = time.Now()

// mono is monotonic time in nanoseconds.
func mono() int64 { return int64(time.Since(epoch)) }

// Subprotocol is the subprotocol the server chose, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Polled reports whether the poller reads the connection (rather than a
// goroutine of its own).
func (c *Conn) Polled() bool { return c.p != nil }

// Start begins reading and the keepalive, delivering events to h. It is
// separate from Dial so that the caller can write first. On a connection
// that ended before Start (a write failed, or Close or Drop was called),
// Start delivers Closed at once, on the caller's goroutine.
func (c *Conn) Start(h Handler) {
	c.h = h
	c.lastRead.Store(mono())
	c.mu.Lock()
	if c.down {
		cause := c.cause
		c.mu.Unlock()
		c.releaseRead()
		h.Closed(c, cause)
		return
	}
	c.started = true
	if c.o.PingInterval > 0 {
		c.timer = time.AfterFunc(alignDelay(c.o.PingInterval, c.o.PingInterval), c.tick)
	}
	if c.p != nil {
		c.mu.Unlock()
		c.p.add(c)
		return
	}
	if c.downCh == nil {
		c.downCh = make(chan struct{})
	}
	c.resumeC = make(chan struct{}, 1)
	c.mu.Unlock()
	go c.readLoop()
}

// Write sends data as one text message, within the write timeout. A write
// that fails ends the connection.
func (c *Conn) Write(data []byte) error {
	bp := getBuf()
	*bp = appendFrame(*bp, opText, data)
	defer putBuf(bp)
	c.wmu.Lock()
	c.mu.Lock()
	ending := c.ending
	c.mu.Unlock()
	if ending {
		c.wmu.Unlock()
		return ErrClosed
	}
	err := c.writeLocked(*bp, time.Now().Add(c.o.writeTimeout()))
	c.unlockWriter()
	if err != nil {
		return c.failWrite(err)
	}
	return nil
}

// writeLocked writes what is owed, then f (if any), by the deadline. The
// caller holds wmu.
func (c *Conn) writeLocked(f []byte, deadline time.Time) error {
	c.deadline.Store(deadline.UnixNano())
	defer c.deadline.Store(0)
	if c.spill != nil {
		err := c.writeOut(*c.spill)
		putBuf(c.spill)
		c.spill = nil
		if err != nil {
			return err
		}
	}
	if err := c.payOwed(); err != nil {
		return err
	}
	if f != nil {
		return c.writeOut(f)
	}
	return nil
}

func (c *Conn) writeOut(b []byte) error {
	if c.tc != nil {
		_, err := c.tc.Write(b) // through tlsIO.Write, to writeRaw
		return err
	}
	return c.writeRaw(b)
}

// writeRaw writes b to the socket; its callers are serialized (wmu, or
// crypto/tls's own lock). What the socket takes at once costs no deadline:
// setting one arms a runtime timer and wakes the runtime's poller thread,
// a cost per frame. Only the rest waits, bounded by the writer's deadline.
func (c *Conn) writeRaw(b []byte) error {
	if c.rc != nil {
		n, err := c.writeNow(b)
		if err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
	deadline := time.Now().Add(c.o.writeTimeout())
	if ns := c.deadline.Load(); ns != 0 {
		deadline = time.Unix(0, ns)
	}
	c.nc.SetWriteDeadline(deadline)
	_, err := c.nc.Write(b)
	c.nc.SetWriteDeadline(time.Time{})
	return err
}

// payOwed writes the owed control frames, blocking. The caller holds wmu.
func (c *Conn) payOwed() error {
	for _, slot := range [...]*atomic.Pointer[[]byte]{&c.owedPong, &c.owedPing} {
		if bp := slot.Swap(nil); bp != nil {
			err := c.writeOut(*bp)
			putBuf(bp)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Conn) owes() bool { return c.owedPong.Load() != nil || c.owedPing.Load() != nil }

// unlockWriter releases wmu, then pays what was owed meanwhile: a control
// frame owed while wmu was held is written by its holder or, once it let
// go, by whoever sees it here first.
func (c *Conn) unlockWriter() {
	c.wmu.Unlock()
	for c.owes() && c.wmu.TryLock() {
		err := c.writeLocked(nil, time.Now().Add(c.o.writeTimeout()))
		c.wmu.Unlock()
		if err != nil {
			c.failWrite(err)
			return
		}
	}
}

// owe queues a control frame in slot and writes it if no one else is
// writing. From the poller it never blocks: a socket that takes only part
// leaves the rest to a short-lived goroutine.
func (c *Conn) owe(slot *atomic.Pointer[[]byte], bp *[]byte, mayBlock bool) {
	putBuf(slot.Swap(bp))
	if mayBlock {
		if c.wmu.TryLock() {
			c.payLocked()
		}
		return
	}
	if !c.wmu.TryLock() {
		return // the holder pays it when it lets go (unlockWriter)
	}
	if c.tc != nil || c.spill != nil || c.rc == nil {
		c.wmu.Unlock()
		go c.flushOwed()
		return
	}
	// Plain TCP and nothing spilled: one write that does not wait.
	for _, slot := range [...]*atomic.Pointer[[]byte]{&c.owedPong, &c.owedPing} {
		bp := slot.Swap(nil)
		if bp == nil {
			continue
		}
		n, err := c.writeNow(*bp)
		if err != nil {
			putBuf(bp)
			c.wmu.Unlock()
			c.failWrite(err)
			return
		}
		if n < len(*bp) {
			c.spill = getBuf()
			*c.spill = append(*c.spill, (*bp)[n:]...)
			putBuf(bp)
			c.wmu.Unlock()
			go c.flushOwed()
			return
		}
		putBuf(bp)
	}
	c.unlockWriter()
}

// flushOwed writes the spill and owed frames, waiting for wmu.
func (c *Conn) flushOwed() {
	c.wmu.Lock()
	c.payLocked()
}

// payLocked writes the spill and owed frames and lets go of wmu, which the
// caller holds.
func (c *Conn) payLocked() {
	err := c.writeLocked(nil, time.Now().Add(c.o.writeTimeout()))
	c.unlockWriter()
	if err != nil {
		c.failWrite(err)
	}
}

// Close sends a close frame with code and reason, waits up to the close
// timeout for the server's, and closes the socket. Closed follows. Before
// Start it does not wait: nothing reads the answer.
func (c *Conn) Close(code StatusCode, reason string) error {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return ErrClosed
	}
	c.ending, c.closing = true, true
	c.cause = ErrClosed
	if c.downCh == nil {
		c.downCh = make(chan struct{})
	}
	downCh, reading := c.downCh, c.started
	c.mu.Unlock()

	grace := c.o.closeTimeout()
	bp := getBuf()
	var pl [maxControlPayload]byte
	*bp = appendFrame(*bp, opClose, closePayload(pl[:0], code, reason))
	if !c.wmu.TryLock() {
		// A writer stalled on a full socket gives up within the grace.
		c.nc.SetWriteDeadline(time.Now().Add(grace))
		c.wmu.Lock()
	}
	err := c.writeLocked(*bp, time.Now().Add(grace))
	c.wmu.Unlock()
	putBuf(bp)
	if err != nil || !reading {
		c.shutdown() // before Start nothing reads the answer
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-downCh: // the reader saw the server's close frame or the end
	case <-t.C:
		c.shutdown()
	}
	return nil
}

// Drop closes the socket without a close frame, as a power cut would.
// Closed follows.
func (c *Conn) Drop() {
	c.mu.Lock()
	if !c.ending {
		c.ending, c.cause = true, ErrClosed
	}
	c.mu.Unlock()
	c.shutdown()
}

// failWrite ends the connection for a write that failed with err, and
// returns the error Closed reports.
func (c *Conn) failWrite(err error) error {
	we := &WriteError{Err: err}
	c.fail(we)
	return we
}

// fail ends the connection for err without a close frame.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if !c.ending {
		c.ending, c.cause = true, err
	}
	c.mu.Unlock()
	c.shutdown()
}

// failWith ends the connection for err, sending a close frame with code
// first (0: none). On the reading goroutine: it does not block.
func (c *Conn) failWith(err error, code StatusCode, reason string) {
	c.mu.Lock()
	if c.ending {
		closing := c.closing
		c.mu.Unlock()
		if closing {
			c.shutdown() // the server answered our Close, or broke the protocol
		}
		return
	}
	c.ending, c.cause = true, err
	c.mu.Unlock()
	c.discard.Store(true)
	if code == 0 {
		c.shutdown()
		return
	}
	bp := getBuf()
	var pl [maxControlPayload]byte
	*bp = appendFrame(*bp, opClose, closePayload(pl[:0], code, reason))
	if c.p == nil || c.tc != nil || !c.wmu.TryLock() {
		go c.closeAfter(bp)
		return
	}
	if c.spill == nil {
		if n, err := c.writeNow(*bp); err == nil && n == len(*bp) {
			putBuf(bp)
			c.wmu.Unlock()
			c.shutdown()
			return
		} else if err == nil && n > 0 {
			*bp = append((*bp)[:0], (*bp)[n:]...)
			c.spill = bp
			bp = nil
		}
	}
	c.wmu.Unlock()
	go c.closeAfter(bp)
}

// closeAfter writes what is spilled and the close frame bp (if any), within
// the close timeout, then closes the socket.
func (c *Conn) closeAfter(bp *[]byte) {
	c.wmu.Lock()
	var f []byte
	if bp != nil {
		f = *bp
	}
	c.writeLocked(f, time.Now().Add(c.o.closeTimeout()))
	c.wmu.Unlock()
	putBuf(bp)
	c.shutdown()
}

// shutdown closes the socket once and has Closed delivered.
func (c *Conn) shutdown() {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return
	}
	c.down = true
	downCh, polled, timer := c.downCh, c.p != nil && c.started, c.timer
	c.mu.Unlock()
	c.gone.Store(true)
	if timer != nil {
		timer.Stop()
	}
	if polled {
		c.p.remove(c) // before the close, while the descriptor is ours
	}
	c.nc.Close()
	if downCh != nil {
		close(downCh)
	}
	if polled {
		c.p.closed(c)
	}
}

func (c *Conn) endCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Go runs f, the work a message asked for (a request to serve), off the
// read path; call it from Message. On a polled connection f runs on the
// poller's goroutine once the turn's messages are delivered, which wakes
// no other thread; f running long is left its goroutine while a new one
// takes over the poller within two ticks of 5 ms. On a connection read
// by a goroutine f gets a goroutine of its own.
func (c *Conn) Go(f func()) {
	if c.p != nil {
		c.p.goInline(f)
		return
	}
	go f()
}

// PauseRead stops reading after the current message; call it from
// Message. The keepalive holds its ping meanwhile: a device that is busy
// is not dead.
func (c *Conn) PauseRead() { c.paused.Store(true) }

// ResumeRead takes up reading again after PauseRead; any goroutine.
func (c *Conn) ResumeRead() {
	if !c.paused.Swap(false) {
		return
	}
	if c.p != nil {
		c.p.resume(c)
		return
	}
	select {
	case c.resumeC <- struct{}{}:
	default:
	}
}

// tick is the keepalive, on its timer's goroutine.
func (c *Conn) tick() {
	c.mu.Lock()
	ending := c.ending
	c.mu.Unlock()
	if ending {
		return
	}
	iv, to := c.o.PingInterval, c.o.pingTimeout()
	now := mono()
	last := c.lastRead.Load()
	if at := c.pingAt.Load(); at != 0 {
		switch {
		case last >= at || c.paused.Load():
			c.pingAt.Store(0)
		case time.Duration(now-at) >= to:
			c.fail(fmt.Errorf("%w within %v", ErrNoPong, to))
			return
		default:
			c.timer.Reset(to - time.Duration(now-at))
			return
		}
	}
	quiet := time.Duration(now - last)
	if c.paused.Load() {
		quiet = 0
	}
	if wait := pingWait(quiet, iv); wait > 0 {
		c.timer.Reset(alignDelay(wait, iv))
		return
	}
	c.pingAt.Store(now)
	bp := getBuf()
	*bp = appendFrame(*bp, opPing, nil)
	c.owe(&c.owedPing, bp, true)
	// Back at the timeout, or at the next interval if that comes first:
	// a pong by then makes the next ping due an interval after it.
	c.timer.Reset(min(to, iv))
}

// maxPingGrain bounds how late alignDelay makes a keepalive check.
const maxPingGrain = 100 * time.Millisecond

// pingGrain is the grain of the keepalive of interval iv.
func pingGrain(iv time.Duration) time.Duration { return min(iv/256, maxPingGrain) }

// pingWait is how long the keepalive waits before it pings after quiet
// without anything read, 0 when a ping is due: an interval and a grain of
// silence. The grain lets a server that pings on the same interval, a
// little late, ping first, and the device then sends none.
func pingWait(quiet, iv time.Duration) time.Duration {
	if due := iv + pingGrain(iv); quiet < due {
		return due - quiet
	}
	return 0
}

// alignDelay is d, made up to 1/256 of iv (at most maxPingGrain) longer so
// that the check falls on a multiple of that grain of the clock: the
// checks of thousands of connections then run in batches, the runtime
// waking once per batch rather than once per connection.
func alignDelay(d, iv time.Duration) time.Duration { return alignDelayAt(d, iv, time.Now()) }

func alignDelayAt(d, iv time.Duration, now time.Time) time.Duration {
	g := int64(pingGrain(iv))
	if g <= 0 {
		return d
	}
	at := now.Add(d).UnixNano()
	return d + time.Duration((g-at%g)%g)
}

// WriteError is how a connection ends when writing to its socket failed,
// so that Closed tells a write's failure from a read's.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }

// Unwrap returns the socket's error.
func (e *WriteError) Unwrap() error { return e.Err }
