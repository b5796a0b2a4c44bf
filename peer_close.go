package shellyws

import (
	"time"

	"github.com/coder/websocket"
)

// abort ends the peer at once: every wait on the socket fails.
func (p *peer) abort() {
	p.cancel() // also closes an inbound socket, whose reads take p.ctx
	p.mu.Lock()
	if p.statusCancel != nil {
		p.statusCancel()
	}
	p.mu.Unlock()
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
	if p.stopParent() {
		p.wg.Done() // parentDone will not run
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

// stopWith ends the peer for why, once: a stop closes the connection with
// its close frame, a failure or a reboot drops it. Either way the reader
// then fails and run returns.
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
		p.conn.CloseNow()
		if p.raw != nil {
			p.raw.Close()
		}
	}
	p.cancel() // handlers, and a reader waiting for a slot, see the end
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

func (p *peer) fail(op string, err error) { p.stopWith(peerEnd{reason: endFailed, op: op, err: err}) }
