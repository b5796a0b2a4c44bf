package shellyws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shellyws/shellyws/internal/frame"
)

// Request is one RPC request as the device received it.
type Request struct {
	// ID is the request id exactly as the peer sent it (a JSON number or
	// string). On a websocket or in a POST /rpc frame it is nil for a
	// request that must not be answered; the HTTP GET form has no id.
	ID json.RawMessage
	// Src is who asked; it becomes dst of the response. Empty when absent.
	Src string
	// Method is the method name as sent; match it case-insensitively.
	Method string
	// Params is the raw params object; nil when absent or null.
	Params json.RawMessage
	// Channel is the channel the request came on, so that a device can
	// report the right source of a change. Zero for a Request the library
	// did not build.
	Channel Channel

	auth json.RawMessage // the frame's "auth" object, checked by the Handler (authgate.go)
}

// Channel is one of the ways a request reaches a device.
type Channel int

// The channels. The zero Channel is none of them.
const (
	// ChannelOutbound is the outbound websocket, the connection Run keeps.
	ChannelOutbound Channel = iota + 1
	// ChannelInboundWebsocket is a client of a Handler's websocket /rpc.
	ChannelInboundWebsocket
	// ChannelHTTP is a Handler's HTTP forms: GET and POST /rpc/<method>,
	// POST /rpc and GET /shelly.
	ChannelHTTP
	// ChannelUDP is a datagram of ServeUDP (sys.rpc_udp).
	ChannelUDP
	// ChannelMQTT is a message on the device's MQTT topics (package mqtt).
	ChannelMQTT
)

// String returns "outbound", "inbound_websocket", "http", "udp" or "mqtt".
func (ch Channel) String() string {
	switch ch {
	case ChannelOutbound:
		return "outbound"
	case ChannelInboundWebsocket:
		return "inbound_websocket"
	case ChannelHTTP:
		return "http"
	case ChannelUDP:
		return "udp"
	case ChannelMQTT:
		return "mqtt"
	}
	return "Channel(" + strconv.Itoa(int(ch)) + ")"
}

// Decode unmarshals the request's params into v. Absent params decode as an
// empty object. A failure is returned as an *Error with CodeInvalidArgument,
// ready to be returned from a handler.
func (r *Request) Decode(v any) error {
	if len(r.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Params, v); err != nil {
		return Errorf(CodeInvalidArgument, "Invalid params: %s", jsonProblem(err))
	}
	return nil
}

// jsonProblem turns an encoding/json error into a short message without the
// Go type names that mean nothing to a server.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("'%s' has the wrong type (%s)", te.Field, te.Value)
		}
		return fmt.Sprintf("expected an object, got %s", te.Value)
	}
	return "not valid JSON"
}

// Error codes the Gen2 firmware uses. The negative ones are -(100 + the gRPC
// status code).
const (
	CodeInvalidArgument    = -103
	CodeDeadlineExceeded   = -104
	CodeNotFound           = -105
	CodeResourceExhausted  = -108
	CodeFailedPrecondition = -109
	CodeUnavailable        = -114
	CodeUnauthorized       = 401
	CodeNoHandler          = 404
	CodeInternal           = 500
)

// Error is an RPC error as it travels on the wire. Handlers return it (or wrap
// it) to answer with a specific code; find it with errors.As.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string {
	if e == nil {
		return "rpc error: <nil>"
	}
	return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the wire form of err: the *Error it wraps if there is one,
// otherwise code 500 with err's text, as the firmware does for internal
// failures. It returns nil for a nil err.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e == nil {
			// A handler returned a typed nil *Error: still an error, and
			// err.Error() would dereference it.
			return &Error{Code: CodeInternal, Message: "Internal error: nil *Error returned"}
		}
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// Dispatcher answers RPC requests.
//
// Dispatch is called once per request. On the outbound connection it runs
// on the goroutine that reads every outbound connection of the process,
// once the messages read in that turn are delivered; if the call is still
// running 5 to 10 ms later, a new goroutine takes over reading, so a slow
// call holds up the requests behind it (on any outbound connection) no
// longer than that (one goroutine per process watches while requests
// run; it ends about 25 ms after the last, within goleak's default
// retries). Each request of an inbound websocket client, and each HTTP
// request of a Handler, is dispatched on a goroutine of its own. Calls
// therefore run concurrently, up to the component's in-flight limit per
// connection (see WithMaxInFlight; HTTP requests share one such pool),
// and must be safe for concurrent use.
// ctx is cancelled when the request's connection drops, its HTTP client
// goes away, Run returns, the wake ends (see Component.Wake), the device
// reboots or the Handler is closed; Dispatch must then return promptly,
// because Run, Wake and Handler.Close wait for it.
//
// Dispatch returns the result, which is encoded with encoding/json (a
// json.RawMessage is sent verbatim, nil as null), or an error; see AsError for
// how errors reach the wire. Requests without an id are dispatched too, and
// their result is discarded. A panic in Dispatch is recovered on every
// channel, answered as error 500 "Internal error in <method>" and logged
// with its stack; the connection stays up.
//
// req.Channel tells where the request came from. To act once the answer is
// on the wire (restart, reboot), register the action with AfterReply.
type Dispatcher interface {
	Dispatch(ctx context.Context, req *Request) (any, error)
}

// DispatcherFunc adapts a function to the Dispatcher interface.
type DispatcherFunc func(ctx context.Context, req *Request) (any, error)

// Dispatch calls f(ctx, req).
func (f DispatcherFunc) Dispatch(ctx context.Context, req *Request) (any, error) {
	return f(ctx, req)
}

// Mux routes requests to handlers by method name, ignoring case as devices
// do. It answers an unknown method with 404 "No handler for <method>" and
// serves Shelly.ListMethods from what is registered. It is safe for
// concurrent use; the zero value is ready to use.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]muxEntry // keyed by lower-cased method
}

type muxEntry struct {
	name string
	d    Dispatcher
}

// ListMethodsMethod is the method Mux answers with the registered methods.
const ListMethodsMethod = "Shelly.ListMethods"

// NewMux returns an empty router.
func NewMux() *Mux { return &Mux{} }

// Handle registers d for method. Registering an empty method or a method
// already registered (in any spelling) is a programming error and panics,
// as http.ServeMux does.
func (m *Mux) Handle(method string, d Dispatcher) {
	if method == "" || d == nil {
		panic("shellyws: Mux.Handle needs a method name and a dispatcher")
	}
	key := strings.ToLower(method)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[string]muxEntry)
	}
	if prev, ok := m.handlers[key]; ok {
		panic(fmt.Sprintf("shellyws: method %s registered twice (as %s before)", method, prev.name))
	}
	m.handlers[key] = muxEntry{name: method, d: d}
}

// HandleFunc registers f for method; see Handle.
func (m *Mux) HandleFunc(method string, f func(ctx context.Context, req *Request) (any, error)) {
	m.Handle(method, DispatcherFunc(f))
}

// Methods returns the registered method names, sorted, including
// Shelly.ListMethods.
func (m *Mux) Methods() []string {
	m.mu.RLock()
	names := make([]string, 0, len(m.handlers)+1)
	for _, e := range m.handlers {
		names = append(names, e.name)
	}
	_, own := m.handlers[strings.ToLower(ListMethodsMethod)]
	m.mu.RUnlock()
	if !own {
		names = append(names, ListMethodsMethod)
	}
	slices.Sort(names)
	return names
}

// Dispatch implements Dispatcher.
func (m *Mux) Dispatch(ctx context.Context, req *Request) (any, error) {
	m.mu.RLock()
	e, ok := m.lookup(req.Method)
	m.mu.RUnlock()
	if ok {
		return e.d.Dispatch(ctx, req)
	}
	if strings.EqualFold(req.Method, ListMethodsMethod) {
		return struct {
			Methods []string `json:"methods"`
		}{m.Methods()}, nil
	}
	return nil, Errorf(CodeNoHandler, "No handler for %s", req.Method)
}

// lookup finds method's entry; the caller holds m.mu. Lower-casing into a
// stack buffer keeps the hot path free of allocations.
func (m *Mux) lookup(method string) (muxEntry, bool) {
	var buf [64]byte
	if len(method) > len(buf) {
		e, ok := m.handlers[strings.ToLower(method)]
		return e, ok
	}
	for i := 0; i < len(method); i++ {
		c := method[i]
		if c >= 0x80 {
			e, ok := m.handlers[strings.ToLower(method)]
			return e, ok
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	e, ok := m.handlers[string(buf[:len(method)])]
	return e, ok
}

// Serving one request, on every channel: a frame or an HTTP request becomes
// a call (newCall), the Dispatcher runs it with panics recovered (dispatch),
// its answer is encoded (appendResponse, encodeResult), written by the
// channel, and then the functions given to AfterReply run (call.replied).

// call is one request being served, and the context its handler gets: the
// channel's context (deadline, cancellation, values) with the call itself
// as the value AfterReply looks up. One allocation holds the Request, the
// context and what runs once the reply is written.
type call struct {
	context.Context
	req Request
	// after lists the functions given to AfterReply, newest first;
	// repliedMark once the reply is written and AfterReply refuses.
	after atomic.Pointer[afterFunc]
}

// afterFunc is one function given to AfterReply.
type afterFunc struct {
	f    func()
	next *afterFunc
}

// repliedMark ends a call's after list: the reply is out.
var repliedMark = new(afterFunc)

type callKey struct{}

// Value implements context.Context.
func (cl *call) Value(key any) any {
	if key == (callKey{}) {
		return cl
	}
	return cl.Context.Value(key)
}

// newCall prepares the call of a request received on ch, with a context
// derived from parent.
func newCall(parent context.Context, ch Channel, id json.RawMessage, src, method string, params json.RawMessage) *call {
	return &call{Context: parent, req: Request{ID: id, Src: src, Method: method, Params: params, Channel: ch}}
}

// decodeCall turns a request frame received on ch into a call; data may be
// reused once it returns. A frame whose method is not a non-empty string
// is an error, returned with the call to answer it (errBadMethod) when it
// has an id, nil otherwise.
func decodeCall(parent context.Context, ch Channel, data []byte) (*call, error) {
	fr, err := frame.Decode(data)
	if errors.Is(err, frame.ErrBadMethod) && fr.ID != nil {
		fr = fr.Detach()
		return newCall(parent, ch, fr.ID, fr.Src, "", nil), err
	}
	if err != nil {
		return nil, err
	}
	fr = fr.Detach()
	cl := newCall(parent, ch, fr.ID, fr.Src, fr.Method, fr.Params)
	cl.req.auth = fr.Auth
	return cl, nil
}

// AfterReply arranges for f to run once the reply to the request whose
// handler received ctx has been written to the wire: on the outbound
// websocket, on an inbound websocket client and on HTTP alike. f also runs
// when that write failed or the connection died first, and right after the
// handler for a request that gets no reply (one without an id).
//
// Call it from the handler, before it returns, with the ctx it received (or
// a context derived from it). f runs on a goroutine of its own, so it may
// block without holding up the connection; Run, Wake or Handler.Close
// waits for it, so it must return once its work is done (Reboot and Restart return at
// once and are safe to call from it). Several functions registered for one
// request run in the order given, one after the other.
//
// AfterReply returns false, and never runs f, when ctx is not the context
// of a request being served or the handler of that request has already
// returned; the caller then decides what to do with f, for example run it
// itself after a delay.
//
// A device uses it for Shelly.Reboot: answer null, then reboot.
func AfterReply(ctx context.Context, f func()) bool {
	cl, ok := ctx.Value(callKey{}).(*call)
	if !ok || cl == nil || f == nil {
		return false
	}
	for {
		head := cl.after.Load()
		if head == repliedMark {
			return false
		}
		if cl.after.CompareAndSwap(head, &afterFunc{f: f, next: head}) {
			return true
		}
	}
}

// done marks the reply written (or abandoned) and, if the handler gave
// AfterReply functions, starts them with start, which runs its argument on
// a goroutine that its channel waits for.
func (cl *call) done(start func(func())) {
	head := cl.after.Swap(repliedMark)
	if head == nil {
		return
	}
	var fs []func()
	for n := head; n != nil; n = n.next {
		fs = append(fs, n.f)
	}
	start(func() {
		for i := len(fs) - 1; i >= 0; i-- {
			fs[i]()
		}
	})
}

// errBadMethod answers a request whose method is not a non-empty string.
var errBadMethod = &Error{Code: CodeInvalidArgument, Message: "Invalid argument 'method': must be a non-empty string"}

// dispatch calls the Dispatcher, turning a panic into a 500 so that one bad
// handler cannot take the device down; the panic is logged with its stack.
func (c *Component) dispatch(cl *call) (result any, err error) {
	c.wake.requestStarted() // a request keeps a sleeping device awake
	defer c.wake.requestDone()
	defer func() {
		if p := recover(); p != nil {
			c.opts.logger.Error("shellyws: handler panicked", "method", cl.req.Method,
				"channel", cl.req.Channel.String(), "panic", p, "stack", string(debug.Stack()))
			result, err = nil, Errorf(CodeInternal, "Internal error in %s", cl.req.Method)
		}
	}()
	return c.disp.Dispatch(cl, &cl.req)
}

// appendResponse appends the response frame for req from a handler's
// result: byte for byte the same on every channel that answers frames.
func (c *Component) appendResponse(buf []byte, req *Request, result any, err error) []byte {
	if err == nil {
		var raw []byte
		if raw, err = encodeResult(result); err == nil {
			return frame.AppendResult(buf, req.ID, c.id, req.Src, raw)
		}
	}
	e := AsError(err)
	return frame.AppendError(buf, req.ID, c.id, req.Src, e.Code, e.Message)
}

// encodeResult encodes a handler's result: nil is null, a json.RawMessage
// is sent verbatim if valid, anything else goes through encoding/json.
func encodeResult(result any) ([]byte, error) {
	switch r := result.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		if !json.Valid(r) {
			return nil, Errorf(CodeInternal, "Handler returned invalid JSON")
		}
		return r, nil
	default:
		raw, err := json.Marshal(result)
		if err != nil {
			return nil, Errorf(CodeInternal, "Failed to encode result: %v", err)
		}
		return raw, nil
	}
}
