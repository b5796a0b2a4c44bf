package shellyws

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// handoffAfter is how long a request may run on the reader's goroutine
// before reading moves to a new one. Most handlers finish well within it,
// so a request costs no thread wake-up; a slow one delays the next read by
// at most this much, and then runs on alongside the new reader.
const handoffAfter = time.Millisecond

// readLoop reads and serves requests on its own goroutine. When a request
// outlasts handoffAfter, a new goroutine takes over reading and this one
// returns once the request is served: requests run concurrently, up to the
// in-flight limit, and reading never waits long for a handler.
func (p *peer) readLoop() {
	defer p.wg.Done()
	readCtx := p.ctx
	if p.raw != nil {
		readCtx = context.Background() // aborted by closing raw instead
	}
	// Each reader has its own timer: a shared one could be re-armed by the
	// next reader before this one checks whether it fired.
	handoff := time.AfterFunc(time.Hour, p.readLoop)
	handoff.Stop()
	for {
		typ, r, err := p.conn.Reader(readCtx)
		var buf *bytes.Buffer
		if err == nil {
			buf = getReadBuf()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			putReadBuf(buf)
			p.fail("read", err)
			close(p.readersDone) // only the last reader ever fails
			return
		}
		if typ != websocket.MessageText {
			p.log.Debug("shellyws: dropped a binary message", "len", buf.Len())
			putReadBuf(buf)
			continue
		}
		cl, err := decodeCall(p.ctx, p.channel, buf.Bytes()) // copies what it keeps
		putReadBuf(buf)
		if err != nil {
			p.log.Debug("shellyws: dropped a malformed frame", "err", err)
			continue
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
		p.serve(cl)
		if !handoff.Stop() {
			return // another goroutine reads now, with the count added above
		}
		p.wg.Done()
	}
}

// readBufPool holds the buffers frames are read into. A reader takes one
// only once a frame has arrived and returns it as soon as the frame is
// decoded, so an idle connection holds none: a buffer kept per connection
// would stay resident in every device of a fleet after its first frame.
var readBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getReadBuf() *bytes.Buffer {
	b := readBufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putReadBuf returns b to the pool unless it is nil or grew past
// maxKeptBuf, so the pool does not hold on to the memory of a huge frame.
func putReadBuf(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxKeptBuf {
		return
	}
	readBufPool.Put(b)
}

// serve runs one call and writes its reply, then starts what the handler
// gave AfterReply.
func (p *peer) serve(cl *call) {
	defer func() { <-p.slots }()
	defer cl.done(p.spawn)
	var result any
	trusted, err := p.authorizeRequest(&cl.req)
	if trusted && p.dstFromSrc && cl.req.Src != "" && p.dst.Load() == nil {
		src := cl.req.Src
		p.dst.CompareAndSwap(nil, &src)
	}
	if err == nil {
		result, err = p.c.dispatch(cl)
	}
	if cl.req.ID == nil {
		return
	}
	// The handler writes its own answer, under the lock that makes it the
	// one writer for that moment: handing it to another goroutine would
	// cost a thread wake-up per request.
	bp := getBuf()
	*bp = p.c.appendResponse(*bp, &cl.req, result, err)
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

// spawn runs f on a goroutine counted in wg, so the peer's end waits for
// it. The caller is itself counted, so wg cannot be at zero.
func (p *peer) spawn(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}
