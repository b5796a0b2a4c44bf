package shellyws

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/frame"
)

// pingOnce runs on its timer's goroutine, counted in wg since it was armed.
// A missing pong ends the peer; otherwise it arms the next ping.
func (p *peer) pingOnce() {
	defer p.wg.Done()
	if p.waitingSlot.Load() {
		p.rearmPing()
		return
	}
	// Not derived from p.ctx, which would keep a children map for good:
	// the end of the peer closes the connection, which ends Ping too.
	ctx, cancel := context.WithTimeout(context.Background(), p.c.opts.pingTimeout)
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
		p.ping.Reset(pingDelay(p.c.opts.pingInterval, time.Now()))
	}
}

// maxPingGrain bounds how late pingDelay makes a ping.
const maxPingGrain = 100 * time.Millisecond

// pingDelay is iv, made up to 1/256 of it (at most maxPingGrain) longer so
// that the ping falls on a multiple of that grain of the clock. Thousands
// of connections in one process then ping in about ten batches a second
// rather than one by one, and the runtime wakes once per batch, not per
// ping. now is real time, not WithClock's: the timer runs on real time.
func pingDelay(iv time.Duration, now time.Time) time.Duration {
	g := int64(min(iv/256, maxPingGrain))
	if g <= 0 {
		return iv
	}
	at := now.Add(iv).UnixNano()
	return iv + time.Duration((g-at%g)%g)
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
	if !p.live || p.flushing || p.readEnded.Load() {
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
// put back at the head, so it is sent after the next NotifyFullStatus; once
// the reader has seen the connection end, none is taken out of the queue.
func (p *peer) flushQueue() error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	bp := getBuf()
	defer putBuf(bp)
	for {
		dst := p.dst.Load()
		if dst == nil || p.readEnded.Load() {
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
