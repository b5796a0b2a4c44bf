package shellyws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

	auth json.RawMessage // the frame's "auth" object, checked by the Handler (auth.go)
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
// Dispatch is called once per request by the connection's reader: on a
// websocket (the outbound connection, or an inbound client of a Handler) the
// reader calls it on its own goroutine and, if the call is still running
// after a millisecond, hands reading on to a new goroutine, so a slow call
// never holds up the requests behind it; each HTTP request of a Handler is
// dispatched on its own goroutine. Calls therefore run concurrently, up to
// the component's in-flight limit per connection (see WithMaxInFlight;
// HTTP requests share one such pool), and must be safe for concurrent use. ctx is cancelled when the request's
// connection drops, its HTTP client goes away, Run returns or the Handler is
// closed; Dispatch must then return promptly, because Run and Handler.Close
// wait for it.
//
// Dispatch returns the result, which is encoded with encoding/json (a
// json.RawMessage is sent verbatim, nil as null), or an error; see AsError for
// how errors reach the wire. Requests without an id are dispatched too, and
// their result is discarded.
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
