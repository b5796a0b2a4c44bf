package shellyws

import (
	"github.com/shellyws/shellyws/internal/bpool"
	"github.com/shellyws/shellyws/internal/frame"
)

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
			return // the connection has ended; Closed says why
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

// flushQueue writes every queued notification, in order: one writer of
// the queue at a time (flushMu). One that fails to go out is put back at
// the head, so it is sent after the next NotifyFullStatus. Once the
// connection has seen its end (the server's close, a reset, a failed
// write) the write fails without touching the socket, so nothing more is
// taken out of the queue for it.
func (p *peer) flushQueue() error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	bp := bpool.Get()
	defer bpool.Put(bp)
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
		if err := p.conn.Write(*bp); err != nil {
			p.queue.pushFront(n)
			return err
		}
	}
}
