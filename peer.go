package shellyws

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// peer serves RPC on one websocket, the outbound connection or an inbound
// client, on the goroutine that calls run: that goroutine reads and serves
// requests, handing reading on to a new goroutine only when a request runs
// long (see readLoop). Writes happen where they arise, one at a time under
// writeMu: handlers write their answers, and a short-lived flusher writes
// queued notifications. Keepalive pings and stops run from timers. An idle
// connection so costs one goroutine, its caller's.
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

	channel Channel // what requests of this peer report
	// authorize, set on inbound clients only, admits a request or returns
	// the error to answer instead (authgate.go); the outbound channel is exempt.
	authorize func(*Request) error

	ctx    context.Context // ends with the peer; handlers get it
	cancel context.CancelFunc
	// wg counts every goroutine of the peer but run's caller: readers that
	// took over, timer callbacks (counted from when they are armed) and the
	// flusher.
	wg sync.WaitGroup

	// parent is newPeer's parent; its one AfterFunc registration, counted
	// in wg, both stops a running peer (parentStop) and arms the abort.
	parent     context.Context
	stopParent func() bool

	writeMu sync.Mutex    // one writer at a time
	slots   chan struct{} // in-flight requests
	// readersDone is made by the first handoff (under serving.mu, before
	// the new reader starts) and closed by the last reader: run's own
	// reader, once it handed reading on, waits for it. A peer whose
	// reader never handed off has none.
	readersDone chan struct{}

	// waitingSlot is set while the reader waits for an in-flight slot: no
	// one reads pongs then, so the keepalive holds its ping rather than
	// drop a connection that is only busy.
	waitingSlot atomic.Bool

	// heard is mono() when something last arrived from the other side: a
	// frame, a ping or a pong. The keepalive pings only after a whole
	// interval of silence. It points at heardOwn, or for an outbound
	// connection at the value the dial's ping and pong callbacks set.
	heard    *atomic.Int64
	heardOwn atomic.Int64

	// inflight counts the requests dispatched and not yet answered. A
	// restart waits for them (waitReplies): draining is set then, so no
	// further request is dispatched, and drained, made by that wait, is
	// signalled when the count drops to zero.
	inflight atomic.Int32
	draining atomic.Bool
	drained  atomic.Pointer[chan struct{}]

	// readEnded is set by the reader the instant it sees the connection
	// end, before anything else: from then on notifications stay queued
	// for the next connection instead of going to a socket the kernel may
	// still accept writes on (a half-closed or proxied one).
	readEnded atomic.Bool

	// Lock order: writeMu and mu are never held together; either may be
	// held while taking the queue's lock, and neither while calling user
	// code (handlers run with no peer lock held).
	mu   sync.Mutex
	live bool // run has started and not yet begun to end
	// parentStop is set while run serves with parent among its stops, and
	// stopsParent then is that stop's reason.
	parentStop   bool
	parentReason stopReason
	// statusCancel ends sendFullStatus's context when the peer is aborted
	// while it runs: that context is not derived from ctx, whose children
	// map and done channel would then stay with the connection.
	statusCancel context.CancelFunc
	// ping is the keepalive's one timer: it fires when the next ping may
	// be due and, while pinging is set, when the pong is late.
	ping      *time.Timer
	pinging   bool
	pingArmed int64 // mono() when the pong's deadline was armed
	flushing  bool  // the flusher is running
	ended     bool
	end       peerEnd // the first reason the peer ended
}

// stopReason is why a peer ended.
type stopReason int

const (
	// endFailed: reading, writing or the keepalive failed; the connection
	// is dropped without a close frame.
	endFailed stopReason = iota
	// endShutdown: Run's context ended or the Handler closed; close 1001.
	endShutdown
	// endRestart: Restart; close 1012.
	endRestart
	// endReboot: Reboot; the connection is dropped without a close frame,
	// as a power cycle drops it.
	endReboot
	// endSleep: a wake of a sleeping device ended; close 1000.
	endSleep
	// endPolicy: an inbound client did not authenticate in time; close 1008.
	endPolicy
)

// closeCode is the close status a stop sends, 0 for none.
func (r stopReason) closeCode() websocket.StatusCode {
	switch r {
	case endShutdown:
		return websocket.StatusGoingAway
	case endRestart:
		return websocket.StatusServiceRestart
	case endSleep:
		return websocket.StatusNormalClosure
	case endPolicy:
		return websocket.StatusPolicyViolation
	}
	return 0
}

// closeReason is the text of the close frame of r.
func (r stopReason) closeReason() string {
	switch r {
	case endShutdown:
		return "shutting down"
	case endRestart:
		return "restart"
	case endSleep:
		return "sleep"
	case endPolicy:
		return "authentication timeout"
	}
	return ""
}

// peerEnd is why a peer ended: a stop, or a failure of op.
type peerEnd struct {
	reason stopReason
	op     string // for endFailed: "read", "write" or "ping"
	err    error
}

// stopOn ends a peer for reason when ctx is done. A ctx whose cause is
// errRebooting ends it for endReboot whatever reason says: Reboot wakes
// the waits of Restart.
type stopOn struct {
	ctx    context.Context
	reason stopReason
}

// closeGrace bounds a clean close: a peer that does not answer the close
// frame, or a write stalled on a full socket, is cut off after it, so Run
// and Handler.Close return promptly.
const closeGrace = time.Second

// maxKeptBuf is the largest buffer kept for reuse after a frame, so the
// pools do not hold on to the memory of the largest frame seen.
const maxKeptBuf = 64 << 10

// newPeer prepares a peer whose life ends closeGrace after parent does.
// Its context is not derived from parent: cancelling a read context tears
// the socket down at once, and the other side deserves a close frame first.
func newPeer(parent context.Context, c *Component, conn *websocket.Conn, raw net.Conn, log *slog.Logger, queue *notifyQueue) *peer {
	p := &peer{
		c:      c,
		conn:   conn,
		raw:    raw,
		log:    log,
		queue:  queue,
		parent: parent,
		slots:  make(chan struct{}, c.opts.maxInFlight),
	}
	p.heard = &p.heardOwn
	p.heard.Store(mono()) // the handshake is the first thing heard
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1) // for parentDone; finish takes it back if it never runs
	p.stopParent = context.AfterFunc(parent, p.parentDone)
	return p
}

// parentDone runs when parent is done: it stops the peer if run serves
// with parent among its stops, and aborts it if it has not ended
// closeGrace later. One registration on parent does both, as each costs
// memory for the connection's whole life.
func (p *peer) parentDone() {
	defer p.wg.Done()
	t := time.NewTimer(closeGrace) // from now, however long the stop takes
	defer t.Stop()
	p.mu.Lock()
	stop, reason := p.parentStop, p.parentReason
	p.mu.Unlock()
	if stop {
		p.stopFor(p.parent, reason)
	}
	select {
	case <-t.C:
		p.abort()
	case <-p.ctx.Done():
	}
}

// stopFor stops the peer for reason, which ctx, one of run's stops, ended.
func (p *peer) stopFor(ctx context.Context, reason stopReason) {
	if errors.Is(context.Cause(ctx), errRebooting) {
		reason = endReboot
	}
	p.stopWith(peerEnd{reason: reason})
}

// peerStop is a stop of run other than parent, registered with
// context.AfterFunc and counted in wg while registered.
type peerStop struct {
	p      *peer
	on     stopOn
	unwait func() bool
}

func (s *peerStop) fire() {
	defer s.p.wg.Done()
	s.p.stopFor(s.on.ctx, s.on.reason)
}

// run serves the peer on the caller's goroutine until the connection ends
// or one of stops is done, and returns why, with the close frame of that
// stop sent.
func (p *peer) run(stops ...stopOn) peerEnd {
	var others []peerStop
	parentStop, parentReason := false, endShutdown
	p.mu.Lock()
	p.live = !p.ended // a stop may have come before run (see watchRestart)
	for _, s := range stops {
		switch {
		case s.ctx == nil:
		case s.ctx == p.parent && !p.parentStop:
			// parentDone stops the peer; should parent be done already,
			// parentDone may have run before this, so check below.
			p.parentStop, p.parentReason = true, s.reason
			parentStop, parentReason = true, s.reason
		default:
			if others == nil {
				others = make([]peerStop, 0, len(stops))
			}
			others = append(others, peerStop{p: p, on: s})
		}
	}
	p.mu.Unlock()
	if parentStop && p.parent.Err() != nil {
		p.stopFor(p.parent, parentReason)
	}
	for i := range others {
		s := &others[i]
		p.wg.Add(1)
		s.unwait = context.AfterFunc(s.on.ctx, s.fire)
	}
	if iv := p.c.opts.pingInterval; iv > 0 {
		p.mu.Lock()
		p.wg.Add(1) // for the armed ping; see pingOnce
		p.ping = time.AfterFunc(pingDelay(iv, time.Now()), p.pingOnce)
		p.mu.Unlock()
	}
	p.kick() // notifications queued before the connection

	p.wg.Add(1)
	if !p.readLoop() {
		<-p.readersDone
	}

	p.mu.Lock()
	p.live = false
	end := p.end
	if p.ping != nil && p.ping.Stop() {
		p.wg.Done()
	}
	p.parentStop = false
	p.mu.Unlock()
	for i := range others {
		if others[i].unwait() {
			p.wg.Done()
		}
	}
	p.finish(0, "") // the close frame, if any, went out in stopWith
	return end
}
