package shellyws

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// A request is served on the goroutine that read it, so it costs no
// thread wake-up. When one is still running one to two handoff ticks
// later, a new goroutine takes over reading and the first returns once the
// request is served: requests run concurrently, up to the in-flight limit,
// and reading never waits long for a handler. One goroutine per process
// watches the readers that are serving, and only while requests come: a
// timer armed per request would wake a second thread for every request.
// Each tick costs a wake-up too; measured through the simulator, one at a
// time, a 1 ms tick cost 8 µs of CPU per request over none, 5 ms 2 µs.
const (
	handoffTick = 5 * time.Millisecond
	// handoffLinger is how many quiet ticks the watcher waits for the next
	// request before it ends.
	handoffLinger = 4
)

// serving holds the readers serving a request, each with the handoff ticks
// it was seen at.
var serving struct {
	mu       sync.Mutex
	readers  map[*reader]int
	started  uint64 // requests registered so far
	watching bool   // watchServing runs
}

// reader is one goroutine reading a peer: a handoff starts another.
type reader struct{ p *peer }

// startServing registers r as serving a request, starting the watcher if
// it is not running.
func (r *reader) startServing() {
	serving.mu.Lock()
	if serving.readers == nil {
		serving.readers = make(map[*reader]int)
	}
	serving.readers[r] = 0
	serving.started++
	if !serving.watching {
		serving.watching = true
		go watchServing()
	}
	serving.mu.Unlock()
}

// doneServing unregisters r and reports whether it still reads: false if
// the watcher handed reading to another goroutine meanwhile.
func (r *reader) doneServing() bool {
	serving.mu.Lock()
	_, still := serving.readers[r]
	delete(serving.readers, r)
	serving.mu.Unlock()
	return still
}

// watchServing hands reading over for every reader seen serving the same
// request at two ticks in a row, and ends after handoffLinger ticks with
// no request.
func watchServing() {
	t := time.NewTicker(handoffTick)
	defer t.Stop()
	quiet, seen := 0, uint64(0)
	for range t.C {
		serving.mu.Lock()
		for r, ticks := range serving.readers {
			if ticks == 0 {
				serving.readers[r] = 1
				continue
			}
			delete(serving.readers, r)
			// r's goroutine is counted in wg and still serving (it
			// unregisters under serving.mu), so wg is not at zero.
			r.p.wg.Add(1)
			if r.p.readersDone == nil {
				r.p.readersDone = make(chan struct{})
			}
			go r.p.readLoop()
		}
		if len(serving.readers) == 0 && serving.started == seen {
			quiet++
		} else {
			quiet = 0
		}
		seen = serving.started
		if quiet >= handoffLinger {
			serving.watching = false
			serving.mu.Unlock()
			return
		}
		serving.mu.Unlock()
	}
}

// readLoop reads and serves requests until the connection fails, or until
// the watcher hands reading to a new goroutine while this one serves. It
// reports whether reading ended here: false after a handoff.
func (p *peer) readLoop() (ended bool) {
	defer p.wg.Done()
	readCtx := p.ctx
	if p.raw != nil {
		readCtx = context.Background() // aborted by closing raw instead
	}
	r := &reader{p: p}
	for {
		typ, rd, err := p.conn.Reader(readCtx)
		var buf *bytes.Buffer
		if err == nil {
			p.heard.Store(mono()) // the server is there: no ping needed
			buf = getReadBuf()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			p.readEnded.Store(true) // first: the flusher checks it per frame
			putReadBuf(buf)
			p.fail("read", err)
			p.readersEnded()
			return true
		}
		if typ != websocket.MessageText {
			p.log.Debug("shellyws: dropped a binary message", "len", buf.Len())
			putReadBuf(buf)
			continue
		}
		cl, err := decodeCall(p.ctx, p.channel, buf.Bytes()) // copies what it keeps
		putReadBuf(buf)
		if err != nil && cl != nil {
			p.log.Debug("shellyws: answered a frame without a method name", "err", err)
			p.reply(&cl.req, nil, errBadMethod)
			continue
		}
		if err != nil {
			p.log.Debug("shellyws: dropped a malformed frame", "err", err)
			continue
		}
		if p.draining.Load() {
			p.log.Debug("shellyws: restarting; request not executed", "method", cl.req.Method)
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
				p.readersEnded()
				return true
			}
		}
		p.inflight.Add(1) // before the handler could call Restart
		r.startServing()
		p.serve(cl)
		if !r.doneServing() {
			return false // another goroutine reads now
		}
	}
}

// readersEnded tells run that the last reader has ended, if run's own
// reader handed off. Only the last reader ever fails, and one started by a
// handoff sees the channel that handoff made.
func (p *peer) readersEnded() {
	if p.readersDone != nil {
		close(p.readersDone)
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

// authorizeRequest runs the peer's authorize hook, if any. trusted reports
// whether the request may subscribe its client to notifications: it was
// authenticated, or authentication is off. An exempt request is admitted
// but not trusted, since notifications carry the state auth protects.
func (p *peer) authorizeRequest(req *Request) (trusted bool, err error) {
	if p.authorize == nil {
		return true, nil
	}
	if err := p.authorize(req); err != nil {
		return false, err
	}
	return !p.c.auth.get().Enable || !isExempt(req.Method), nil
}

// serve runs one call and writes its reply, then starts what the handler
// gave AfterReply.
func (p *peer) serve(cl *call) {
	defer func() { <-p.slots }()
	defer p.answered() // after the reply is written, or abandoned
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
	p.reply(&cl.req, result, err)
}

// reply writes the response to req. The handler writes its own answer,
// under the lock that makes it the one writer for that moment: handing it
// to another goroutine would cost a thread wake-up per request.
func (p *peer) reply(req *Request, result any, err error) {
	bp := getBuf()
	*bp = p.c.appendResponse(*bp, req, result, err)
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
