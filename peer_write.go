package shellyws

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/frame"
)

// The keepalive (protocol section 1): the device pings only after a whole
// interval in which nothing arrived (no frame, no ping, no pong), and drops
// the connection when that ping's pong is late. One timer per connection
// serves both: it fires when a ping may be due and, while a ping waits for
// its pong, at the pong's deadline. An idle round so allocates nothing of
// the device's own: no context, no timer.

// pingOnce runs on the timer's goroutine, counted in wg since it was armed.
func (p *peer) pingOnce() {
	defer p.wg.Done()
	iv := p.c.opts.pingInterval
	p.mu.Lock()
	if !p.live {
		p.mu.Unlock()
		return
	}
	if p.pinging { // the pong's deadline
		now := mono()
		if p.waitingSlot.Load() || p.heard.Load() >= p.pingArmed {
			// Busy, not dead: the pong may well be waiting in the socket
			// behind requests the device cannot take yet. Or the pong (or
			// a frame) came in the instant before the deadline, and Ping
			// is returning. Another deadline decides.
			p.pingArmed = now
			p.armLocked(p.c.opts.pingTimeout)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.fail("ping", fmt.Errorf("no pong within %v", p.c.opts.pingTimeout))
		return
	}
	if wait := p.pingWait(iv, mono()); wait > 0 {
		p.armLocked(alignedDelay(wait, pingGrain(iv), time.Now()))
		p.mu.Unlock()
		return
	}
	p.pinging = true
	p.pingArmed = mono()
	p.armLocked(p.c.opts.pingTimeout)
	p.mu.Unlock()

	// Ping returns with the pong, or when the connection closes: at the
	// deadline above, or at the peer's end.
	err := p.conn.Ping(context.Background())
	if err == nil {
		p.heard.Store(mono())
	}
	p.mu.Lock()
	p.pinging = false
	if p.ping.Stop() {
		// The deadline had not fired: its count in wg is this one's now.
		if err == nil && p.live {
			p.ping.Reset(pingDelay(iv, time.Now()))
			p.mu.Unlock()
			return
		}
		p.wg.Done()
	} // else the deadline's run is under way; it sees pinging false
	p.mu.Unlock()
	if err != nil {
		p.fail("ping", err)
	}
}

// pingWait returns how long the keepalive waits before it pings, given
// that now is mono(): the rest of an interval and a grain since something
// last arrived, a whole interval while the reader waits for an in-flight
// slot (no one reads pongs then), or zero when a ping is due. The grain of
// slack lets a server that pings on the same interval, a little late, win
// the race: its ping arrives first and the device sends none.
func (p *peer) pingWait(iv time.Duration, now int64) time.Duration {
	if p.waitingSlot.Load() {
		return iv
	}
	if quiet, due := time.Duration(now-p.heard.Load()), iv+pingGrain(iv); quiet < due {
		return due - quiet
	}
	return 0
}

// armLocked arms the keepalive's timer, which has fired or been stopped,
// for d. The caller holds mu.
func (p *peer) armLocked(d time.Duration) {
	p.wg.Add(1)
	p.ping.Reset(d)
}

// maxPingGrain bounds how late pingDelay makes a ping.
const maxPingGrain = 100 * time.Millisecond

// pingDelay is iv, made up to 1/256 of it (at most maxPingGrain) longer so
// that the ping falls on a multiple of that grain of the clock. Thousands
// of connections in one process then ping in about ten batches a second
// rather than one by one, and the runtime wakes once per batch, not per
// ping. now is real time, not WithClock's: the timer runs on real time.
func pingDelay(iv time.Duration, now time.Time) time.Duration {
	return alignedDelay(iv, pingGrain(iv), now)
}

// pingGrain is the grain of the keepalive of interval iv.
func pingGrain(iv time.Duration) time.Duration { return min(iv/256, maxPingGrain) }

// alignedDelay is d, made up to g longer so that it ends on a multiple of g
// of the clock.
func alignedDelay(d, g time.Duration, now time.Time) time.Duration {
	if g <= 0 {
		return d
	}
	at := now.Add(d).UnixNano()
	return d + time.Duration((int64(g)-at%int64(g))%int64(g))
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
