package shellyws

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/evws"
)

// coderConn is an inbound websocket client, accepted with coder/websocket,
// as a peer's wsConn: a reader goroutine of its own delivers messages and
// the end as the poller does for the outbound connection, and requests get
// a goroutine each. Inbound clients are few (WithMaxClients) and each
// holds an HTTP server goroutine anyway. Its keepalive is the outbound
// one's: a ping only after an interval in which nothing arrived.
type coderConn struct {
	ws           *websocket.Conn
	h            evws.Handler
	writeTimeout time.Duration
	iv, timeout  time.Duration // the keepalive; no pings when iv is 0

	ctx      context.Context // of reads and pings; ends when the reader does
	cancel   context.CancelFunc
	lastRead atomic.Int64 // mono() when anything last arrived
	paused   atomic.Bool
	resume   chan struct{}

	mu     sync.Mutex
	ending bool
	cause  error
	timer  *time.Timer
	wg     sync.WaitGroup // the keepalive's run, counted while armed
}

func newCoderConn(o *options) *coderConn {
	c := &coderConn{
		writeTimeout: o.writeTimeout,
		iv:           o.pingInterval,
		timeout:      o.pingTimeout,
		resume:       make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// heard notes that something arrived: a frame, a ping or a pong.
func (c *coderConn) heard() { c.lastRead.Store(mono()) }

// acceptOptions adds the callbacks through which c hears pings and pongs.
func (c *coderConn) acceptOptions(o *websocket.AcceptOptions) *websocket.AcceptOptions {
	o.OnPingReceived = func(context.Context, []byte) bool { c.heard(); return true }
	o.OnPongReceived = func(context.Context, []byte) { c.heard() }
	return o
}

func (c *coderConn) Start(h evws.Handler) {
	c.h = h
	c.heard()
	if c.iv > 0 {
		c.mu.Lock()
		c.wg.Add(1)
		c.timer = time.AfterFunc(c.iv, c.tick)
		c.mu.Unlock()
	}
	go c.readLoop()
}

func (c *coderConn) readLoop() {
	for {
		if c.paused.Load() && !c.isEnding() {
			select {
			case <-c.resume:
			case <-c.ctx.Done():
			}
			continue
		}
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.end(err)
			break
		}
		c.heard()
		if !c.isEnding() {
			c.h.Message(nil, typ == websocket.MessageText, data)
		}
	}
	c.mu.Lock()
	if c.timer != nil && c.timer.Stop() {
		c.wg.Done()
	}
	c.mu.Unlock()
	c.cancel()
	c.ws.CloseNow()
	c.wg.Wait()
	c.h.Closed(nil, c.endCause())
}

func (c *coderConn) isEnding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending
}

func (c *coderConn) endCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// end records why the connection ends, unless it is ending already, and
// reports whether this was the first.
func (c *coderConn) end(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		return false
	}
	c.ending, c.cause = true, err
	return true
}

// wakeReader has a paused reader read again, for the close handshake.
func (c *coderConn) wakeReader() {
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

func (c *coderConn) Write(text []byte) error {
	if c.isEnding() {
		return evws.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout)
	err := c.ws.Write(ctx, websocket.MessageText, text)
	cancel()
	if err != nil {
		we := &evws.WriteError{Err: err}
		c.end(we)
		c.ws.CloseNow()
		return we
	}
	return nil
}

func (c *coderConn) Go(f func()) { go f() }

// Close sends a close frame and waits for the client's answer for
// closeGrace at most.
func (c *coderConn) Close(code websocket.StatusCode, reason string) error {
	if !c.end(evws.ErrClosed) {
		return evws.ErrClosed
	}
	c.wakeReader()
	done := make(chan error, 1)
	go func() { done <- c.ws.Close(code, reason) }()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		c.ws.CloseNow()
		return <-done
	}
}

func (c *coderConn) Drop() {
	c.end(evws.ErrClosed)
	c.wakeReader()
	c.ws.CloseNow()
}

func (c *coderConn) PauseRead() { c.paused.Store(true) }

func (c *coderConn) ResumeRead() {
	if c.paused.Swap(false) {
		c.wakeReader()
	}
}

// tick is the keepalive, on its timer's goroutine, counted in wg while
// armed: it pings when nothing arrived for an interval (or holds while
// reading is paused), and ends the connection when nothing arrives within
// the timeout after that ping.
func (c *coderConn) tick() {
	for {
		quiet := time.Duration(mono() - c.lastRead.Load())
		if c.paused.Load() {
			quiet = 0
		}
		if quiet < c.iv {
			c.rearm(c.iv - quiet)
			return
		}
		start := mono()
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		err := c.ws.Ping(ctx)
		cancel()
		switch {
		case err == nil:
			c.heard()
		case c.isEnding():
			c.wg.Done()
			return
		case c.lastRead.Load() < start && !c.paused.Load():
			if c.end(fmt.Errorf("%w within %v", evws.ErrNoPong, c.timeout)) {
				c.ws.CloseNow()
			}
			c.wg.Done()
			return
		}
	}
}

// rearm arms the keepalive for d, or ends its count once the connection
// is ending.
func (c *coderConn) rearm(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		c.wg.Done()
		return
	}
	c.timer.Reset(d)
}
