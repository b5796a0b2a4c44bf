package shellyws

import (
	"github.com/shellyws/shellyws/internal/bpool"
	"github.com/shellyws/shellyws/internal/evws"
)

// Message implements evws.Handler: one message from the other side, on
// the connection's reading goroutine (for the outbound connection, the
// poller that reads every outbound connection of the process). It decodes
// the request, copying what it keeps, and hands it to the connection's Go:
// it never blocks and never writes. With every in-flight slot taken it
// keeps the request and pauses reading until a slot frees, so a flood
// backs up into the server's socket.
func (p *peer) Message(_ *evws.Conn, text bool, data []byte) {
	if !text {
		p.log.Debug("shellyws: dropped a binary message", "len", len(data))
		return
	}
	cl, err := decodeCall(p.ctx, p.channel, data) // copies what it keeps
	if err != nil && cl == nil {
		p.log.Debug("shellyws: dropped a malformed frame", "err", err)
		return
	}
	if err != nil {
		// Answered -103 in turn with the requests around it: a call
		// without a method (serveOne).
		p.log.Debug("shellyws: answering a frame without a method name", "err", err)
	}
	if p.draining.Load() {
		p.log.Debug("shellyws: restarting; request not executed", "method", cl.req.Method)
		return
	}
	p.slotMu.Lock()
	if p.busy >= p.c.opts.maxInFlight {
		p.held = cl
		// Paused before the lock is let go: a slot freed at once takes
		// the held request and resumes reading, and a resume before the
		// pause would be lost, leaving the connection unread for good.
		p.conn.PauseRead()
		p.slotMu.Unlock()
		return
	}
	p.busy++
	p.slotMu.Unlock()
	p.inflight.Add(1) // before the handler could call Restart
	p.wg.Add(1)       // Message never runs after Closed, and wind waits for Closed
	p.conn.Go(func() { p.serve(cl) })
}

// serve runs cl in a slot taken for it, then the request held while every
// slot was taken, if any, in the same slot.
func (p *peer) serve(cl *call) {
	defer p.wg.Done()
	for cl != nil {
		p.serveOne(cl)
		cl = p.nextHeld()
	}
}

// nextHeld passes the caller's slot to the held request, resuming reading,
// or frees it.
func (p *peer) nextHeld() *call {
	// Restarting or ended: a held request is not executed.
	drop := p.draining.Load() || p.ctx.Err() != nil
	p.slotMu.Lock()
	cl := p.held
	p.held = nil
	if cl == nil || drop {
		p.busy--
	}
	p.slotMu.Unlock()
	if cl == nil {
		return nil
	}
	p.conn.ResumeRead()
	if drop {
		p.log.Debug("shellyws: restarting or closed; request not executed", "method", cl.req.Method)
		return nil
	}
	p.inflight.Add(1)
	return cl
}

// authorizeRequest runs the peer's authorize hook, if any. trusted reports
// whether the request may subscribe its client to notifications: it was
// authenticated, or authentication is off. An exempt request is admitted
// but not trusted, since notifications carry the state auth protects. A
// trusted request of an inbound client sets authed.
func (p *peer) authorizeRequest(req *Request) (trusted bool, err error) {
	if p.authorize == nil {
		return true, nil
	}
	if err := p.authorize(req); err != nil {
		return false, err
	}
	trusted = !p.c.auth.get().Enable || !isExempt(req.Method)
	if trusted {
		p.authed.Store(true)
	}
	return trusted, nil
}

// serveOne runs one call and writes its reply, then starts what the
// handler gave AfterReply.
func (p *peer) serveOne(cl *call) {
	defer p.answered() // after the reply is written, or abandoned
	defer cl.done(p.spawn)
	if cl.req.Method == "" { // decodeCall's errBadMethod: no request to run
		p.reply(&cl.req, nil, errBadMethod)
		return
	}
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

// reply writes the response to req. The handler writes its own answer:
// handing it to another goroutine would cost a thread wake-up per request.
// A write that fails ends the connection, and Closed says so.
func (p *peer) reply(req *Request, result any, err error) {
	bp := bpool.Get()
	*bp = p.c.appendResponse(*bp, req, result, err)
	if p.ctx.Err() == nil {
		_ = p.conn.Write(*bp)
	}
	bpool.Put(bp)
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
