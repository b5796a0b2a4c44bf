package shellyws

import (
	"time"

	"github.com/coder/websocket"
)

// abort ends the peer at once: the connection is dropped and the opening's
// status call cancelled.
func (p *peer) abort() {
	p.cancel()
	p.mu.Lock()
	if p.statusCancel != nil {
		p.statusCancel()
	}
	p.mu.Unlock()
	p.conn.Drop()
}

// finish waits for every goroutine of the peer, once its connection has
// ended (after Closed, or, for a peer that never ran, after Drop).
func (p *peer) finish() {
	p.cancel()
	if p.stopParent() {
		p.wg.Done() // parentDone will not run
	}
	p.wg.Wait()
}

// closeWith sends a close frame with code; the connection waits for the
// answer for closeGrace at most.
func (p *peer) closeWith(code websocket.StatusCode, reason string) {
	p.conn.Close(code, reason)
}

// stopWith ends the peer for why, once: a stop closes the connection with
// its close frame, a failure or a reboot drops it. Either way Closed
// follows. It blocks for a close handshake (at most closeGrace), and for
// a restart's replies: never call it for those on the connection's
// reading goroutine.
func (p *peer) stopWith(why peerEnd) {
	p.mu.Lock()
	first := !p.ended
	if first {
		p.ended, p.end, p.live = true, why, false
	}
	p.mu.Unlock()
	if !first {
		return
	}
	if why.reason == endRestart {
		// The replies of requests already dispatched go out before the
		// 1012, however the restart was called: a handler may call
		// Restart itself rather than from AfterReply.
		p.waitReplies(p.c.opts.writeTimeout)
	}
	if code := why.reason.closeCode(); code != 0 {
		p.closeWith(code, why.reason.closeReason())
	} else {
		p.conn.Drop()
	}
	p.cancel() // handlers see the end
}

// waitReplies waits until every request dispatched has been answered, or
// for d at most, and dispatches no further request meanwhile. It runs on a
// goroutine of its own (see stopSoon), never the handler's.
func (p *peer) waitReplies(d time.Duration) {
	p.draining.Store(true)
	if p.inflight.Load() == 0 {
		return
	}
	ch := make(chan struct{}, 1)
	p.drained.Store(&ch)
	t := time.NewTimer(d)
	defer t.Stop()
	for p.inflight.Load() > 0 {
		select {
		case <-ch:
		case <-t.C:
			return
		}
	}
}

// answered counts a request as answered, waking waitReplies at zero.
func (p *peer) answered() {
	if p.inflight.Add(-1) != 0 {
		return
	}
	if ch := p.drained.Load(); ch != nil {
		select {
		case *ch <- struct{}{}:
		default:
		}
	}
}

// stopSoon stops the peer for reason on a goroutine counted in wg, so the
// caller does not wait for the close handshake. A peer that has ended is
// left alone: its finish may be waiting on wg already.
func (p *peer) stopSoon(reason stopReason) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.stopWith(peerEnd{reason: reason})
	}()
}

// fail ends the peer for a failure of op. It does not block: the
// connection is dropped.
func (p *peer) fail(op string, err error) {
	p.stopWith(peerEnd{reason: endFailed, op: op, err: err})
}
