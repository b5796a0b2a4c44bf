package shellyws

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/frame"
)

// peer serves RPC on one websocket, the outbound connection or an inbound
// client, on the goroutine that calls run: that goroutine reads and serves
// requests, handing reading on to a new goroutine only when a request runs
// long (see readLoop). Writes happen where they arise, one at a time under
// writeMu: handlers write their answers, and a short-lived flusher writes
// queued notifications. Keepalive pings and stops run from timers. An idle
// connection so costs one goroutine, its caller's.
type peer struct {
	c     *Component
	conn  *websocket.Conn
	log   *slog.Logger
	queue *notifyQueue

	// raw is the TCP connection under an outbound websocket, nil for an
	// inbound one. With it, reads take no context and writes are bounded by
	// a deadline: a context per frame would cost coder/websocket several
	// allocations each time.
	raw net.Conn

	// dst addresses the peer's notifications; until it is set they are not
	// queued. With dstFromSrc the first src the peer sends sets it.
	dst        atomic.Pointer[string]
	dstFromSrc bool

	ctx    context.Context // ends with the peer; handlers get it
	cancel context.CancelFunc
	// wg counts every goroutine of the peer but run's caller: readers that
	// took over, timer callbacks (counted from when they are armed) and the
	// flusher.
	wg sync.WaitGroup

	stopAbort func() bool
	abortDone chan struct{}

	writeMu     sync.Mutex    // one writer at a time
	slots       chan struct{} // in-flight requests
	readersDone chan struct{} // closed by the last reader

	// waitingSlot is set while the reader waits for an in-flight slot: no
	// one reads pongs then, so the keepalive holds its ping rather than
	// drop a connection that is only busy.
	waitingSlot atomic.Bool

	mu       sync.Mutex
	live     bool // run has started and not yet begun to end
	ping     *time.Timer
	flushing bool // the flusher is running
	ended    bool
	end      peerEnd // the first reason the peer ended
}

// peerEnd is why a peer ended: stop is the index (1 or 2) of the stop
// context passed to run that ended, or 0 for a failure of op.
type peerEnd struct {
	stop int
	op   string // "read", "write" or "ping"
	err  error
}

// closeGrace bounds a clean close: a peer that does not answer the close
// frame, or a write stalled on a full socket, is cut off after it, so Run
// and Handler.Close return promptly.
const closeGrace = time.Second

// maxKeptBuf is the largest buffer a connection keeps between frames, so an
// idle device does not hold on to the memory of its largest frame.
const maxKeptBuf = 64 << 10

// newPeer prepares a peer whose life ends closeGrace after parent does.
// Its context is not derived from parent: cancelling a read context tears
// the socket down at once, and the other side deserves a close frame first.
func newPeer(parent context.Context, c *Component, conn *websocket.Conn, raw net.Conn, log *slog.Logger, queue *notifyQueue) *peer {
	p := &peer{
		c:           c,
		conn:        conn,
		raw:         raw,
		log:         log,
		queue:       queue,
		abortDone:   make(chan struct{}),
		slots:       make(chan struct{}, c.opts.maxInFlight),
		readersDone: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.stopAbort = context.AfterFunc(parent, func() {
		defer close(p.abortDone)
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-t.C:
			p.abort()
		case <-p.ctx.Done():
		}
	})
	return p
}

// abort ends the peer at once: every wait on the socket fails.
func (p *peer) abort() {
	p.cancel() // also closes an inbound socket, whose reads take p.ctx
	if p.raw != nil {
		p.raw.Close()
	}
}

// finish closes the connection, with a close frame if code is not zero, and
// waits for every goroutine of the peer. run calls it; a caller whose peer
// never ran (a failed NotifyFullStatus) calls it directly.
func (p *peer) finish(code websocket.StatusCode, reason string) {
	if code != 0 {
		p.closeWith(code, reason)
	} else {
		p.conn.CloseNow()
	}
	p.cancel()
	if !p.stopAbort() {
		<-p.abortDone
	}
	p.wg.Wait()
}

func (p *peer) closeWith(code websocket.StatusCode, reason string) {
	if p.raw != nil {
		// The close handshake gets closeGrace, not coder/websocket's 5+5 s.
		p.raw.SetDeadline(time.Now().Add(closeGrace))
	}
	p.conn.Close(code, reason)
}

// stopWith ends the peer for why, once: a stop closes the connection with a
// close frame, a failure drops it. Either way the reader then fails and run
// returns.
func (p *peer) stopWith(why peerEnd, code websocket.StatusCode, reason string) {
	p.mu.Lock()
	first := !p.ended
	if first {
		p.ended, p.end, p.live = true, why, false
	}
	p.mu.Unlock()
	if !first {
		return
	}
	if code != 0 {
		p.closeWith(code, reason)
	} else {
		p.conn.CloseNow()
	}
	p.cancel() // handlers, and a reader waiting for a slot, see the end
}

func (p *peer) fail(op string, err error) { p.stopWith(peerEnd{op: op, err: err}, 0, "") }

// afterFunc is context.AfterFunc whose f is counted in wg from now on, so
// that ending the peer can wait for an f that already started.
func (p *peer) afterFunc(ctx context.Context, f func()) (stop func()) {
	if ctx == nil {
		return func() {}
	}
	p.wg.Add(1)
	stopf := context.AfterFunc(ctx, func() { defer p.wg.Done(); f() })
	return func() {
		if stopf() {
			p.wg.Done()
		}
	}
}

// run serves the peer on the caller's goroutine until the connection ends,
// stopA or stopB (either may be nil) is done, and returns why with the close
// frame sent: stopA closes with codeA, stopB with codeB.
func (p *peer) run(stopA context.Context, codeA websocket.StatusCode, stopB context.Context, codeB websocket.StatusCode) peerEnd {
	p.mu.Lock()
	p.live = true
	p.mu.Unlock()
	unA := p.afterFunc(stopA, func() { p.stopWith(peerEnd{stop: 1}, codeA, closeReason(codeA)) })
	unB := p.afterFunc(stopB, func() { p.stopWith(peerEnd{stop: 2}, codeB, closeReason(codeB)) })
	if iv := p.c.opts.pingInterval; iv > 0 {
		p.mu.Lock()
		p.wg.Add(1) // for the armed ping; see pingOnce
		p.ping = time.AfterFunc(iv, p.pingOnce)
		p.mu.Unlock()
	}
	p.kick() // notifications queued before the connection

	p.wg.Add(1)
	p.readLoop(new(bytes.Buffer))
	<-p.readersDone

	p.mu.Lock()
	p.live = false
	end := p.end
	if p.ping != nil && p.ping.Stop() {
		p.wg.Done()
	}
	p.mu.Unlock()
	unA()
	unB()
	p.finish(0, "") // the close frame, if any, went out in stopWith
	return end
}

func closeReason(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusServiceRestart:
		return "restart"
	case websocket.StatusGoingAway:
		return "shutting down"
	}
	return ""
}

// pingOnce runs on its timer's goroutine, counted in wg since it was armed.
// A missing pong ends the peer; otherwise it arms the next ping.
func (p *peer) pingOnce() {
	defer p.wg.Done()
	if p.waitingSlot.Load() {
		p.rearmPing()
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.c.opts.pingTimeout)
	err := p.conn.Ping(ctx)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	if err != nil {
		if timedOut && p.waitingSlot.Load() {
			// The pong may well be waiting in the socket behind requests
			// the device cannot take yet: busy, not dead.
			p.rearmPing()
			return
		}
		if timedOut {
			err = fmt.Errorf("no pong within %v", p.c.opts.pingTimeout)
		}
		p.fail("ping", err)
		return
	}
	p.rearmPing()
}

func (p *peer) rearmPing() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		p.wg.Add(1)
		p.ping.Reset(p.c.opts.pingInterval)
	}
}

// notify queues a notification for the peer once it has a dst. It runs on
// the goroutine of whoever published, so it never blocks.
func (p *peer) notify(method string, params []byte) {
	if p.dst.Load() != nil {
		p.queue.push(notification{method: method, params: params})
		p.kick()
	}
}

// kick starts the flusher unless it runs already or the peer is not live.
func (p *peer) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live || p.flushing {
		return
	}
	p.flushing = true
	p.wg.Add(1)
	go p.flush()
}

// flush writes queued notifications until the queue is empty. It re-checks
// the queue under mu before it stops, so a push that saw it running is not
// left behind.
func (p *peer) flush() {
	defer p.wg.Done()
	for {
		if err := p.flushQueue(); err != nil {
			p.mu.Lock()
			p.flushing = false
			p.mu.Unlock()
			p.fail("write", err)
			return
		}
		p.mu.Lock()
		if queued, _ := p.queue.stats(); queued == 0 || !p.live {
			p.flushing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// flushQueue writes every queued notification. One that fails to go out is
// put back at the head, so it is sent after the next NotifyFullStatus.
func (p *peer) flushQueue() error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	bp := getBuf()
	defer putBuf(bp)
	for {
		dst := p.dst.Load()
		if dst == nil {
			return nil
		}
		n, ok := p.queue.pop()
		if !ok {
			return nil
		}
		*bp = frame.AppendNotification((*bp)[:0], p.c.id, *dst, n.method, n.params)
		if err := p.write(*bp); err != nil {
			p.queue.pushFront(n)
			return err
		}
	}
}

// write sends one frame within the write timeout; a write that overruns it
// fails and the connection with it. The caller holds writeMu.
func (p *peer) write(f []byte) error {
	if p.raw != nil {
		p.raw.SetWriteDeadline(time.Now().Add(p.c.opts.writeTimeout))
		// Cleared again: coder/websocket writes pongs, pings and close
		// replies on the same socket, bounded by contexts of its own.
		defer p.raw.SetWriteDeadline(time.Time{})
		return p.conn.Write(context.Background(), websocket.MessageText, f)
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.c.opts.writeTimeout)
	defer cancel()
	return p.conn.Write(ctx, websocket.MessageText, f)
}

// handoffAfter is how long a request may run on the reader's goroutine
// before reading moves to a new one. Most handlers finish well within it,
// so a request costs no thread wake-up; a slow one delays the next read by
// at most this much, and then runs on alongside the new reader.
const handoffAfter = time.Millisecond

// readLoop reads and serves requests on its own goroutine. When a request
// outlasts handoffAfter, a new goroutine takes over reading and this one
// returns once the request is served: requests run concurrently, up to the
// in-flight limit, and reading never waits long for a handler.
func (p *peer) readLoop(buf *bytes.Buffer) {
	defer p.wg.Done()
	readCtx := p.ctx
	if p.raw != nil {
		readCtx = context.Background() // aborted by closing raw instead
	}
	// Each reader has its own timer: a shared one could be re-armed by the
	// next reader before this one checks whether it fired.
	handoff := time.AfterFunc(time.Hour, func() { p.readLoop(buf) })
	handoff.Stop()
	for {
		typ, r, err := p.conn.Reader(readCtx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			p.fail("read", err)
			close(p.readersDone) // only the last reader ever fails
			return
		}
		if typ != websocket.MessageText {
			p.log.Debug("shellyws: dropped a binary message", "len", buf.Len())
			continue
		}
		fr, err := frame.Decode(buf.Bytes())
		if buf.Cap() > maxKeptBuf {
			*buf = bytes.Buffer{}
		}
		if err != nil {
			p.log.Debug("shellyws: dropped a malformed frame", "err", err)
			continue
		}
		fr = fr.Detach() // buf is reused for the next frame
		if p.dstFromSrc && fr.Src != "" && p.dst.Load() == nil {
			src := fr.Src
			p.dst.CompareAndSwap(nil, &src)
		}
		select {
		case p.slots <- struct{}{}:
		default:
			p.waitingSlot.Store(true)
			select {
			case p.slots <- struct{}{}:
				p.waitingSlot.Store(false)
			case <-p.ctx.Done():
				p.fail("read", p.ctx.Err())
				close(p.readersDone)
				return
			}
		}
		p.wg.Add(1) // for the reader that may take over
		handoff.Reset(handoffAfter)
		p.serve(&Request{ID: fr.ID, Src: fr.Src, Method: fr.Method, Params: fr.Params})
		if !handoff.Stop() {
			return // another goroutine reads now, with the count added above
		}
		p.wg.Done()
	}
}

func (p *peer) serve(req *Request) {
	defer func() { <-p.slots }()
	result, err := p.c.dispatch(p.ctx, req)
	if req.ID == nil {
		return
	}
	// The handler writes its own answer, under the lock that makes it the
	// one writer for that moment: handing it to another goroutine would
	// cost a thread wake-up per request.
	bp := getBuf()
	*bp = p.c.encodeResponse(*bp, req, result, err)
	var werr error
	p.writeMu.Lock()
	if p.ctx.Err() == nil {
		werr = p.write(*bp)
	}
	p.writeMu.Unlock()
	putBuf(bp)
	if werr != nil {
		p.fail("write", werr)
	}
}

// dispatch calls the Dispatcher, turning a panic into a 500 so that one bad
// handler cannot take the device down.
func (c *Component) dispatch(ctx context.Context, req *Request) (result any, err error) {
	c.wake.requestStarted()
	defer c.wake.requestDone()
	defer func() {
		if p := recover(); p != nil {
			c.opts.logger.Error("shellyws: handler panicked", "method", req.Method, "panic", p)
			result, err = nil, Errorf(CodeInternal, "Internal error in %s", req.Method)
		}
	}()
	return c.disp.Dispatch(ctx, req)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// getBuf returns an empty buffer; the pointer travels with it back to
// putBuf, so recycling it allocates nothing.
func getBuf() *[]byte {
	bp := bufPool.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

func putBuf(bp *[]byte) {
	if cap(*bp) > maxKeptBuf {
		return
	}
	bufPool.Put(bp)
}
