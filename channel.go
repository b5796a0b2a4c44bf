package shellyws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Channels the library does not run itself (MQTT in package mqtt, or a
// transport of the embedder's) serve frames through ServeFrame and hear
// the device's notifications through Subscribe: the same Dispatcher, the
// same frame rules (protocol section 2) and the same answers byte for byte
// as on the websockets.

// Errors of ServeFrame. Each means the frame was not executed.
var (
	// ErrNotExempt is returned by ServeFrame for a channel that
	// authentication protects: UDP (ServeUDP), HTTP and the inbound
	// websocket (Handler) check credentials themselves.
	ErrNotExempt = errors.New("shellyws: ServeFrame serves only channels exempt from authentication (ChannelMQTT, ChannelOutbound)")
	// ErrDeviceDown is returned while the device reboots or sleeps: a
	// device that is off hears nothing.
	ErrDeviceDown = errors.New("shellyws: the device is down (rebooting or asleep)")
)

// ServeFrame serves one request frame that arrived on ch, a channel exempt
// from authentication that the embedder runs: ChannelMQTT (protocol section
// 16.3), or ChannelOutbound for a transport standing in for the outbound
// websocket. Any other channel is refused with ErrNotExempt, since nothing
// here checks credentials.
//
// The frame is decoded and dispatched as on the websockets: Request.Channel
// is ch, the handler's ctx ends with ctx, a reboot or the end of a wake. A
// request with an id is answered: reply gets the response frame (keys id,
// src, dst, result|error) and dst, the request's src ("" when it had none;
// the frame then has no dst key). A frame with an id whose method is not a
// non-empty string is answered -103. reply runs on the caller's goroutine
// and may keep resp. Then the functions the handler gave AfterReply run,
// on the caller's goroutine too, so ServeFrame returns once they are done.
//
// A frame that is not a request (not JSON, not an object, no method, an id
// of the wrong type) is dropped with an error saying why, for the caller's
// debug log; so is every frame while the device is down (ErrDeviceDown).
// ServeFrame does not bound how many calls run at once: the caller does.
func (c *Component) ServeFrame(ctx context.Context, ch Channel, data []byte, reply func(dst string, resp []byte)) error {
	if ch != ChannelMQTT && ch != ChannelOutbound {
		return ErrNotExempt
	}
	cl, err := decodeCall(ctx, ch, data)
	if cl == nil {
		return fmt.Errorf("shellyws: frame dropped: %w", err)
	}
	return c.serveCall(cl, frameChannel{}, reply)
}

// frameChannel is what a channel served by serveCall changes in the
// common path.
type frameChannel struct {
	// authorize admits a request or returns the error to answer; nil
	// admits every request.
	authorize func(*Request) error
	// noSrcDst is the dst of an answer to a request without src; "" for
	// none (section 2).
	noSrcDst string
	// maxReply, when positive, bounds a response frame: a larger one is
	// replaced by error -108 saying so.
	maxReply int
}

// serveCall dispatches a decoded call with a context that also ends when
// the device goes down or its wake ends, hands the answer (if the request
// has an id) to reply, and runs what the handler gave AfterReply. A call
// without a method (decodeCall's errBadMethod) is answered -103 at once,
// even while the device is down.
func (c *Component) serveCall(cl *call, fc frameChannel, reply func(dst string, resp []byte)) error {
	if cl.req.Method == "" {
		c.replyCall(cl, fc, reply, nil, errBadMethod)
		return nil
	}
	power, down := c.powerState()
	if down || c.asleep() {
		return ErrDeviceDown
	}
	ctx, cancel := context.WithCancel(cl.Context)
	defer cancel()
	stopPower := context.AfterFunc(power, cancel)
	defer stopPower()
	if wake := c.wakeDone(); wake != nil {
		stopWake := context.AfterFunc(wake, cancel)
		defer stopWake()
	}
	cl.Context = ctx
	var result any
	var err error
	if fc.authorize != nil {
		err = fc.authorize(&cl.req)
	}
	if err == nil {
		result, err = c.dispatch(cl)
	}
	c.replyCall(cl, fc, reply, result, err)
	cl.done(func(after func()) { after() })
	return nil
}

// replyCall hands the answer to cl, if it has an id, to reply.
func (c *Component) replyCall(cl *call, fc frameChannel, reply func(dst string, resp []byte), result any, err error) {
	if cl.req.ID == nil || reply == nil {
		return
	}
	req := cl.req
	if req.Src == "" {
		req.Src = fc.noSrcDst
	}
	resp := c.appendResponse(nil, &req, result, err)
	if fc.maxReply > 0 && len(resp) > fc.maxReply {
		resp = c.appendResponse(resp[:0], &req, nil, Errorf(CodeResourceExhausted,
			"Response of %d bytes does not fit in one datagram (at most %d)", len(resp), fc.maxReply))
	}
	reply(cl.req.Src, resp)
}

// Subscribe registers f to hear every notification the component publishes
// from now on (NotifyStatus and NotifyEvent; NotifyFullStatus opens the
// outbound connection only), with its params object, "ts" first, as the
// websockets send it. The returned function unregisters f.
//
// f is called on the publisher's goroutine, in the order of publication,
// while the device may hold its own locks: it must not block and must not
// call back into the device; hand the notification to a goroutine of its
// own (with a bounded queue). params is shared: read it, keep it, never
// change it. f may still be called once, concurrently, after unsubscribe
// returns.
func (c *Component) Subscribe(f func(method string, params json.RawMessage)) (unsubscribe func()) {
	if f == nil {
		return func() {}
	}
	return c.subscribe(func(method string, params []byte) { f(method, params) })
}
