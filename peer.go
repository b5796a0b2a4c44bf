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
// client: one reader goroutine feeds handlers, each on a goroutine of its
// own up to the in-flight limit, and the goroutine that calls loop is the
// only writer. Its notifications come from its own bounded queue.
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
	wg     sync.WaitGroup // reader, handlers, ping

	stopAbort func() bool
	abortDone chan struct{}

	writeMu  sync.Mutex    // one writer at a time: the loop or a handler
	writeErr chan error    // a handler's failed write, for the loop
	slots    chan struct{} // in-flight requests
	readDone chan error
	pingDone chan error
	wbuf     []byte // the writer's notification buffer
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
func newPeer(parent context.Context, c *Component, conn *websocket.Conn, log *slog.Logger, queue *notifyQueue) *peer {
	p := &peer{
		c:         c,
		conn:      conn,
		log:       log,
		queue:     queue,
		abortDone: make(chan struct{}),
		writeErr:  make(chan error, 1),
		slots:     make(chan struct{}, c.opts.maxInFlight),
		readDone:  make(chan error, 1),
		pingDone:  make(chan error, 1),
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

// startReading starts the reader goroutine.
func (p *peer) startReading() {
	p.wg.Add(1)
	go p.readLoop(new(bytes.Buffer))
}

// finish closes the connection, with a close frame if code is not zero, and
// waits for every goroutine of the peer.
func (p *peer) finish(code websocket.StatusCode, reason string) {
	if code != 0 {
		if p.raw != nil {
			// The close handshake gets closeGrace, not coder/websocket's 5+5 s.
			p.raw.SetDeadline(time.Now().Add(closeGrace))
		}
		p.conn.Close(code, reason)
	} else {
		p.conn.CloseNow()
	}
	p.cancel()
	if !p.stopAbort() {
		<-p.abortDone
	}
	p.wg.Wait()
}

// loop writes responses and notifications and keeps the connection alive
// until it fails or stopA or stopB closes (nil ones never do). It returns the
// stop channel that closed, or what failed: op is "read", "write" or "ping".
func (p *peer) loop(stopA, stopB <-chan struct{}) (stopped <-chan struct{}, op string, err error) {
	var tick <-chan time.Time
	if iv := p.c.opts.pingInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	pinging := false
	for {
		if err := p.flushQueue(); err != nil {
			return nil, "write", err
		}
		select {
		case <-stopA:
			return stopA, "", nil
		case <-stopB:
			return stopB, "", nil
		case err := <-p.readDone:
			return nil, "read", err
		case err := <-p.writeErr:
			return nil, "write", err
		case <-p.queue.ready:
		case <-tick:
			if !pinging {
				pinging = true
				p.wg.Add(1)
				go p.ping()
			}
		case err := <-p.pingDone:
			pinging = false
			if err != nil {
				return nil, "ping", err
			}
		}
	}
}

// notify queues a notification for the peer once it has a dst. It runs on
// the goroutine of whoever published, so it never blocks.
func (p *peer) notify(method string, params []byte) {
	if p.dst.Load() != nil {
		p.queue.push(notification{method: method, params: params})
	}
}

// flushQueue writes every queued notification. One that fails to go out is
// put back at the head, so it is sent after the next NotifyFullStatus.
func (p *peer) flushQueue() error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	for {
		dst := p.dst.Load()
		if dst == nil {
			return nil
		}
		n, ok := p.queue.pop()
		if !ok {
			return nil
		}
		p.wbuf = frame.AppendNotification(p.wbuf[:0], p.c.id, *dst, n.method, n.params)
		if err := p.write(p.wbuf); err != nil {
			p.queue.pushFront(n)
			return err
		}
		if cap(p.wbuf) > maxKeptBuf {
			p.wbuf = nil
		}
	}
}

// write sends one frame within the write timeout; a write that overruns it
// fails and the connection with it. The caller holds writeMu.
func (p *peer) write(f []byte) error {
	if p.raw != nil {
		p.raw.SetWriteDeadline(time.Now().Add(p.c.opts.writeTimeout))
		return p.conn.Write(context.Background(), websocket.MessageText, f)
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.c.opts.writeTimeout)
	defer cancel()
	return p.conn.Write(ctx, websocket.MessageText, f)
}

func (p *peer) ping() {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.c.opts.pingTimeout)
	defer cancel()
	err := p.conn.Ping(ctx)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("no pong within %v", p.c.opts.pingTimeout)
	}
	p.pingDone <- err
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
		if err != nil {
			p.readDone <- err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			p.readDone <- err
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
		case <-p.ctx.Done():
			p.readDone <- p.ctx.Err()
			return
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
	// one writer for that moment: handing it to the loop's goroutine would
	// cost a thread wake-up per request.
	bp := getBuf()
	*bp = p.c.encodeResponse(*bp, req, result, err)
	p.writeMu.Lock()
	if p.ctx.Err() == nil {
		err = p.write(*bp)
	}
	p.writeMu.Unlock()
	putBuf(bp)
	if err != nil {
		select {
		case p.writeErr <- err:
		default: // the loop already has a failure to report
		}
	}
}

// dispatch calls the Dispatcher, turning a panic into a 500 so that one bad
// handler cannot take the device down.
func (c *Component) dispatch(ctx context.Context, req *Request) (result any, err error) {
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
