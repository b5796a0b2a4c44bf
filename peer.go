package shellyws

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/evws"
)

// wsConn is the websocket under a peer: an *evws.Conn for the outbound
// connection, a coderConn for an inbound client. Its handler's Message and
// Closed run one at a time and must not block; Closed is the last call.
type wsConn interface {
	// Start begins reading; frames written before it go out first.
	Start(h evws.Handler)
	// Write sends one text frame within the write timeout; a failed write
	// ends the connection, and Closed then reports an *evws.WriteError.
	Write(text []byte) error
	// Go runs the work a message asked for: a request to serve.
	Go(f func())
	// Close sends a close frame and closes within closeGrace; Drop closes
	// without one. Either way Closed follows with evws.ErrClosed.
	Close(code websocket.StatusCode, reason string) error
	Drop()
	// PauseRead, called from Message, stops reading after that message
	// (back pressure; the keepalive holds meanwhile); ResumeRead takes it
	// up again from any goroutine.
	PauseRead()
	ResumeRead()
}

// peer serves RPC on one websocket, the outbound connection or an inbound
// client. The connection delivers each message to Message, which decodes
// it and hands the request to the connection's Go (for the outbound
// connection: on the poller, which a new goroutine takes over if the
// request runs two ticks of 5 ms); Closed tells it the connection ended.
// Writes happen where they arise: handlers write their answers, and a
// short-lived flusher writes queued notifications. The keepalive is the
// connection's. An idle outbound peer so costs no goroutine.
type peer struct {
	c     *Component
	conn  wsConn
	log   *slog.Logger
	queue *notifyQueue

	// dst addresses the peer's notifications; until it is set they are not
	// queued. With dstFromSrc the first src the peer sends sets it.
	dst        atomic.Pointer[string]
	dstFromSrc bool

	channel Channel // what requests of this peer report
	// authorize, set on inbound clients only, admits a request or returns
	// the error to answer instead (inbound_auth.go); the outbound channel
	// is exempt.
	authorize func(*Request) error
	// authed is set once authorize admitted a request that was not exempt
	// (or authentication was off): the inbound auth timeout then holds off.
	authed atomic.Bool

	ctx    context.Context // ends with the peer; handlers get it
	cancel context.CancelFunc
	// wg counts the work of the peer that may outlive a stop: requests
	// being served, the flusher, stops and AfterReply functions. It is
	// waited for only after Closed, after which no request is added.
	wg sync.WaitGroup

	// parent is newPeer's parent; its one AfterFunc registration, counted
	// in wg, both stops a running peer (parentStop) and arms the abort.
	parent     context.Context
	stopParent func() bool

	// inflight counts the requests dispatched and not yet answered. A
	// restart waits for them (waitReplies): draining is set then, so no
	// further request is dispatched, and drained, made by that wait, is
	// signalled when the count drops to zero.
	inflight atomic.Int32
	draining atomic.Bool
	drained  atomic.Pointer[chan struct{}]

	// flushMu makes one writer of the queue at a time, so notifications
	// go out in the order they were queued.
	flushMu sync.Mutex

	// slotMu guards the in-flight slots: busy of them are taken, and held
	// is the one request read while all were, waiting with reading paused.
	slotMu sync.Mutex
	busy   int
	held   *call

	// Lock order: mu and slotMu are never held together; either may be
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
	flushing     bool // the flusher is running
	ended        bool
	end          peerEnd // the first reason the peer ended
	// onClosed, set by start, is called once by Closed.
	onClosed func()
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

// newPeer prepares a peer whose life ends closeGrace after parent does.
// Its context is not derived from parent: the other side deserves a close
// frame before handlers see the end. Unless watched is set, the peer
// registers parentDone on parent; a watched peer's owner calls it instead
// (see runner.ctxDone), which saves a registration per device of a fleet.
func newPeer(parent context.Context, c *Component, conn wsConn, log *slog.Logger, queue *notifyQueue, watched bool) *peer {
	p := &peer{
		c:      c,
		conn:   conn,
		log:    log,
		queue:  queue,
		parent: parent,
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if watched {
		p.stopParent = notRegistered
		return p
	}
	p.wg.Add(1) // for parentDone; finish takes it back if it never runs
	p.stopParent = context.AfterFunc(parent, p.parentDone)
	return p
}

// notRegistered is the stopParent of a watched peer.
func notRegistered() bool { return false }

// parentDone runs when parent is done, counted in wg: it stops the peer if
// run serves with parent among its stops, and aborts it if it has not
// ended closeGrace later. One registration on parent does both, as each
// costs memory for the connection's whole life.
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

// run serves the peer until the connection ends or one of stops is done,
// and returns why, with the close frame of that stop sent. The caller's
// goroutine only waits: the connection reads.
func (p *peer) run(stops ...stopOn) peerEnd {
	done := make(chan struct{})
	others := p.start(func() { close(done) }, stops...)
	<-done
	return p.wind(others)
}

// start serves the peer with stops and calls onClosed once the connection
// has ended (from Closed: it must not block); wind, called after that,
// ends the peer.
func (p *peer) start(onClosed func(), stops ...stopOn) []peerStop {
	var others []peerStop
	parentStop, parentReason := false, endShutdown
	p.mu.Lock()
	p.onClosed = onClosed
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
	p.conn.Start(p)
	p.kick() // notifications queued before the connection
	return others
}

// wind ends a peer whose connection has ended: it unregisters the stops
// and waits for the peer's work, and returns why it ended.
func (p *peer) wind(others []peerStop) peerEnd {
	p.mu.Lock()
	p.live = false
	end := p.end
	p.parentStop = false
	p.mu.Unlock()
	for i := range others {
		if others[i].unwait() {
			p.wg.Done()
		}
	}
	p.finish()
	return end
}

// Closed implements evws.Handler: the connection has ended, for err. A
// stop of the peer's own has recorded its reason already; anything else
// is a failure, reported with what failed.
func (p *peer) Closed(_ *evws.Conn, err error) {
	var we *evws.WriteError
	switch {
	case errors.Is(err, evws.ErrNoPong):
		p.fail("ping", err)
	case errors.As(err, &we):
		p.fail("write", we.Err)
	default:
		p.fail("read", err) // a no-op after a stop of the peer's own (evws.ErrClosed)
	}
	p.mu.Lock()
	f := p.onClosed
	p.mu.Unlock()
	if f != nil {
		f()
	}
}
