//go:build linux

package evws

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller reads many connections on one goroutine. Its epoll set is itself
// registered with the Go runtime's network poller, so the goroutine parks
// like any network read, holding no thread while nothing arrives, and it
// exists only while the Poller has connections.
type Poller struct {
	ep   int
	epf  *os.File // ep, as the runtime polls it
	erc  syscall.RawConn
	evfd int // wakes the loop for queued work

	mu      sync.Mutex
	conns   []*Conn // by descriptor
	n       int     // connections added whose Closed is not yet delivered
	gen     int32
	running bool
	ready   []*Conn // to read: new, resumed, or cut short for fairness
	done    []*Conn // to deliver Closed to
	woken   atomic.Bool
	wg      sync.WaitGroup

	// The loop's own.
	events []unix.EpollEvent
	work   []*Conn
	buf    []byte // what a read takes, plaintext of TLS
	cbuf   []byte // TLS records read
	now    int64
	waitFn func(uintptr) bool
	nev    int
	readFn func(uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error
	inline []func() // work of Conn.Go for this turn

	inF      atomic.Uint64 // the sequence number of the work running, 0 if none
	inSeq    atomic.Uint64
	watching atomic.Bool
}

const (
	pollBuf   = 64 << 10
	maxEvents = 256
	// maxReads bounds the reads of one connection per turn, so one that
	// floods cannot starve the others.
	maxReads = 16
)

// NewPoller makes a poller; the process's shared one serves connections
// given none.
func NewPoller() (*Poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(evfd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(ep)
		unix.Close(evfd)
		return nil, err
	}
	p := &Poller{ep: ep, evfd: evfd, epf: os.NewFile(uintptr(ep), "evws-epoll")}
	if p.erc, err = p.epf.SyscallConn(); err != nil {
		p.epf.Close()
		unix.Close(evfd)
		return nil, err
	}
	p.events = make([]unix.EpollEvent, maxEvents)
	p.waitFn = func(uintptr) bool {
		n, err := unix.EpollWait(p.ep, p.events, 0)
		if err != nil {
			n = 0 // EINTR: wait again
		}
		p.nev = n
		return n > 0
	}
	p.readFn = func(fd uintptr) bool {
		// syscall, not unix: under -race, only syscall's reads and writes
		// share the ordering that net's own I/O gives (see rawWrite.do).
		p.rn, p.rerr = syscall.Read(int(fd), p.rbuf)
		return true
	}
	return p, nil
}

var shared struct {
	once sync.Once
	p    *Poller
}

// defaultPoller is the process's shared poller, or nil if epoll failed.
func defaultPoller() *Poller {
	shared.once.Do(func() { shared.p, _ = NewPoller() })
	return shared.p
}

// pollable reports the descriptor of rc if the poller can read it: a
// stream socket.
func pollable(rc syscall.RawConn) (int32, bool) {
	fd, ok := int32(-1), false
	rc.Control(func(f uintptr) {
		t, err := unix.GetsockoptInt(int(f), unix.SOL_SOCKET, unix.SO_TYPE)
		if err == nil && t == unix.SOCK_STREAM {
			fd, ok = int32(f), true
		}
	})
	return fd, ok
}

// add registers c and has it read once: bytes may have come with the
// handshake.
func (p *Poller) add(c *Conn) {
	p.mu.Lock()
	for int(c.fd) >= len(p.conns) {
		p.conns = append(p.conns, nil)
	}
	p.gen++
	c.gen = p.gen
	p.n++
	p.ready = append(p.ready, c)
	if !p.running {
		p.running = true
		p.wg.Add(1)
		go p.loop()
	}
	if c.gone.Load() {
		// Ended as Start ran: its Closed is queued (see shutdown).
		p.mu.Unlock()
		p.wake()
		return
	}
	p.conns[c.fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.fd, Pad: c.gen}
	var err error
	c.rc.Control(func(fd uintptr) { err = unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, int(fd), &ev) })
	if err != nil {
		c.fail(err)
		return
	}
	p.wake()
}

// remove unregisters c; shutdown calls it before closing the socket.
func (p *Poller) remove(c *Conn) {
	p.mu.Lock()
	if int(c.fd) < len(p.conns) && p.conns[c.fd] == c {
		p.conns[c.fd] = nil
	}
	p.mu.Unlock()
	c.rc.Control(func(fd uintptr) { unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, int(fd), nil) })
}

// closed queues c's Closed for the loop.
func (p *Poller) closed(c *Conn) {
	p.mu.Lock()
	p.done = append(p.done, c)
	p.mu.Unlock()
	p.wake()
}

// resume queues c to be read again.
func (p *Poller) resume(c *Conn) {
	p.mu.Lock()
	p.ready = append(p.ready, c)
	p.mu.Unlock()
	p.wake()
}

func (p *Poller) wake() {
	if p.woken.CompareAndSwap(false, true) {
		var one = [8]byte{1}
		unix.Write(p.evfd, one[:])
	}
}

// Wait returns once the poller's goroutine has ended, which it does when
// its last connection's Closed returned.
func (p *Poller) Wait() { p.wg.Wait() }

func (p *Poller) loop() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		work := append(p.work[:0], p.ready...)
		clear(p.ready)
		p.ready = p.ready[:0]
		done := p.done
		p.done = nil
		if len(work) == 0 && len(done) == 0 && p.n == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.now = mono()
		for _, c := range done {
			c.releaseRead()
			c.h.Closed(c, c.endCause())
		}
		if len(done) > 0 {
			p.mu.Lock()
			p.n -= len(done)
			p.mu.Unlock()
		}
		for _, c := range work {
			p.read(c)
		}
		clear(work)
		p.work = work[:0]
		if !p.runInline() {
			return // another goroutine polls now
		}
		if len(work) > 0 || len(done) > 0 {
			// More may be queued (a connection resumed, or cut short for
			// fairness): collect what the others received meanwhile
			// without waiting, so that they are read in turn with it.
			p.collect(p.pollNow())
			if !p.runInline() {
				return
			}
			continue
		}
		p.wait()
		if !p.runInline() {
			return
		}
	}
}

// Work a handler passed to Conn.Go runs on the poller's goroutine once the
// messages of the turn are delivered: handing it to a new goroutine would
// wake a second thread per request, which costs more than the request
// (measured one at a time: 1.46 times coder/websocket's wall time with a
// goroutine per request, 0.92 inline). One goroutine per poller watches
// while such work runs: work still running at two ticks in a row gets the
// poll loop taken from under it by a new goroutine, so a slow handler
// holds up the poller's other connections for one to two ticks at most,
// and its goroutine ends once it is done.
const (
	handoffTick = 5 * time.Millisecond
	// handoffLinger is how many quiet ticks the watcher waits for more
	// work before it ends.
	handoffLinger = 4
)

// goInline queues f to run on the poller once this turn's messages are
// delivered; on the loop's goroutine only.
func (p *Poller) goInline(f func()) { p.inline = append(p.inline, f) }

// runInline runs the queued work, and reports false if the watcher handed
// the loop to another goroutine meanwhile: the caller must then return
// and touch nothing of the poller.
func (p *Poller) runInline() bool {
	for i := 0; i < len(p.inline); i++ {
		f := p.inline[i]
		p.inline[i] = nil
		seq := p.inSeq.Add(1)
		p.inF.Store(seq)
		p.watch()
		f()
		if !p.inF.CompareAndSwap(seq, 0) {
			return false // the new loop goroutine runs what is left
		}
	}
	p.inline = p.inline[:0]
	return true
}

// watch starts the watcher unless it runs.
func (p *Poller) watch() {
	if !p.watching.Load() && p.watching.CompareAndSwap(false, true) {
		p.wg.Add(1)
		go p.watchInline()
	}
}

// watchInline hands the poll loop to a new goroutine when work runs two
// ticks, and ends after handoffLinger quiet ticks.
func (p *Poller) watchInline() {
	defer p.wg.Done()
	t := time.NewTicker(handoffTick)
	defer t.Stop()
	var seen uint64
	quiet, seq := 0, p.inSeq.Load()
	for range t.C {
		cur := p.inF.Load()
		if cur != 0 && cur == seen && p.inF.CompareAndSwap(cur, 0) {
			// The work in progress keeps its goroutine; the loop goes on
			// with the rest of runInline's queue on a new one.
			p.inline = p.inline[indexAfter(p.inline):]
			p.wg.Add(1)
			go p.loop()
			seen = 0
			continue
		}
		seen = cur
		if s := p.inSeq.Load(); cur == 0 && s == seq {
			quiet++
		} else {
			quiet, seq = 0, s
		}
		if quiet >= handoffLinger {
			p.watching.Store(false)
			// Work that started as this watcher was ending saw it running.
			if p.inF.Load() == 0 || !p.watching.CompareAndSwap(false, true) {
				return
			}
			quiet = 0
		}
	}
}

// indexAfter is where the queue resumes after a handoff: past the entries
// already taken (runInline clears each as it takes it).
func indexAfter(q []func()) int {
	i := 0
	for i < len(q) && q[i] == nil {
		i++
	}
	return i
}

// pollNow returns how many events the set holds, without waiting.
func (p *Poller) pollNow() int {
	n, err := unix.EpollWait(p.ep, p.events, 0)
	if err != nil {
		return 0
	}
	return n
}

// wait parks until events arrive and reads the connections they name.
func (p *Poller) wait() {
	if err := p.erc.Read(p.waitFn); err != nil {
		return
	}
	p.collect(p.nev)
}

// collect reads the connections the first n events name.
func (p *Poller) collect(n int) {
	if n == 0 {
		return
	}
	p.nev = n
	p.now = mono()
	p.mu.Lock()
	for _, ev := range p.events[:p.nev] {
		if ev.Fd == int32(p.evfd) {
			var b [8]byte
			unix.Read(p.evfd, b[:])
			p.woken.Store(false)
			continue
		}
		if int(ev.Fd) < len(p.conns) {
			if c := p.conns[ev.Fd]; c != nil && c.gen == ev.Pad {
				if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					c.hup.Store(true)
				}
				p.work = append(p.work, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range p.work {
		p.read(c)
	}
	clear(p.work)
	p.work = p.work[:0]
}

// read takes what c's socket holds, up to maxReads buffers.
func (p *Poller) read(c *Conn) {
	if c.gone.Load() || c.paused.Load() {
		return
	}
	if c.pending != nil {
		c.input(nil) // delivered while paused, or with the handshake
	}
	for range maxReads {
		if c.gone.Load() || c.paused.Load() {
			return
		}
		var more bool
		if c.tc != nil {
			more = p.readTLS(c)
		} else {
			more = p.readPlain(c)
		}
		if !more {
			return
		}
	}
	p.mu.Lock()
	p.ready = append(p.ready, c)
	p.mu.Unlock()
}

// readRaw reads c's socket into b without blocking.
func (p *Poller) readRaw(c *Conn, b []byte) (int, error) {
	p.rbuf = b
	if err := c.rc.Read(p.readFn); err != nil {
		return 0, err
	}
	n, err := p.rn, p.rerr
	p.rbuf, p.rerr = nil, nil
	switch {
	case err == unix.EAGAIN:
		return 0, err
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	c.lastRead.Store(p.now)
	return n, nil
}

// readPlain reads and handles one buffer and reports whether more may wait.
func (p *Poller) readPlain(c *Conn) bool {
	if p.buf == nil {
		p.buf = make([]byte, pollBuf)
	}
	n, err := p.readRaw(c, p.buf)
	if n > 0 {
		c.input(p.buf[:n])
	}
	if err != nil && err != unix.EAGAIN {
		c.fail(err)
		return false
	}
	// A short read emptied the socket: a new edge comes with new bytes,
	// but none with an end that came with these (hup): read on to it.
	return n == len(p.buf) || n > 0 && c.hup.Load()
}

// readTLS reads one buffer of records, decrypts what is complete, and
// reports whether more may wait.
func (p *Poller) readTLS(c *Conn) bool {
	if p.buf == nil {
		p.buf = make([]byte, pollBuf)
	}
	if p.cbuf == nil {
		p.cbuf = make([]byte, pollBuf)
	}
	n, rerr := p.readRaw(c, p.cbuf)
	c.tio.feed = p.cbuf[:n]
	for !c.gone.Load() {
		m, err := c.tc.Read(p.buf)
		if m > 0 {
			c.input(p.buf[:m])
		}
		if err != nil {
			if !errors.Is(err, errWouldBlock) {
				c.fail(err)
			}
			break
		}
	}
	c.tio.feed = nil
	if rerr != nil && rerr != unix.EAGAIN {
		c.fail(rerr)
		return false
	}
	return n == len(p.cbuf) || n > 0 && c.hup.Load()
}

// writeNow writes what the socket takes at once.
func (c *Conn) writeNow(b []byte) (int, error) {
	w := rawWrites.Get().(*rawWrite)
	w.b = b
	err := c.rc.Write(w.fn)
	n, werr := w.n, w.err
	*w = rawWrite{fn: w.fn}
	rawWrites.Put(w)
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}

// rawWrite is one write through RawConn.Write. Its func is made once per
// pooled value: a closure made per call would be garbage per frame.
type rawWrite struct {
	b   []byte
	n   int
	err error
	fn  func(uintptr) bool
}

func (w *rawWrite) do(fd uintptr) bool {
	// The race detector orders a socket write before the read that gets
	// its bytes through one variable in package syscall, which net uses;
	// x/sys/unix keeps its own, so unix.Write here would hide that order
	// from a peer in the same process (a test) and report false races.
	w.n, w.err = syscall.Write(int(fd), w.b)
	return true
}

var rawWrites = sync.Pool{New: func() any {
	w := new(rawWrite)
	w.fn = w.do
	return w
}}
