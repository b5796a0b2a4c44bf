package shellywstest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/coder/websocket"
	"github.com/shellyws/shellyws"
)

// Notification method names a device sends.
const (
	MethodNotifyFullStatus = "NotifyFullStatus"
	MethodNotifyStatus     = "NotifyStatus"
	MethodNotifyEvent      = "NotifyEvent"
)

// Frame is one message from the device, decoded leniently: a member that is
// absent or of the wrong type leaves its field zero, and Raw always holds
// the message as received.
type Frame struct {
	// Raw is the whole message as received.
	Raw json.RawMessage
	// ID is the "id" member exactly as sent; nil when absent.
	ID json.RawMessage
	// Src, Dst and Method are the string members of those names.
	Src, Dst, Method string
	// Params and Result are the raw members; nil when absent.
	Params json.RawMessage
	Result json.RawMessage
	// Error is the "error" member of an error response; nil when absent or
	// not an object.
	Error *shellyws.Error
	// Binary is true for a binary message, which a device must never send;
	// Raw holds its bytes.
	Binary bool

	object     bool // the message is a JSON object
	errPresent bool // it has an "error" member
}

// IsNotification reports whether f is a JSON object with a method and no id.
func (f Frame) IsNotification() bool {
	return f.object && f.Method != "" && f.ID == nil
}

// IsResponse reports whether f is a JSON object with an id, a result or an
// error, and no method.
func (f Frame) IsResponse() bool {
	return f.object && f.ID != nil && f.Method == "" && (f.Result != nil || f.errPresent)
}

// parseFrame decodes a message from the device; it never fails.
func parseFrame(typ websocket.MessageType, data []byte) Frame {
	f := Frame{Raw: json.RawMessage(data)} // Read returns a fresh slice
	if typ != websocket.MessageText {
		f.Binary = true
		return f
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return f
	}
	f.object = true
	f.ID = m["id"]
	f.Params = m["params"]
	f.Result = m["result"]
	str := func(key string) string {
		var s string
		if raw, ok := m[key]; ok {
			_ = json.Unmarshal(raw, &s)
		}
		return s
	}
	f.Src, f.Dst, f.Method = str("src"), str("dst"), str("method")
	if raw, ok := m["error"]; ok {
		f.errPresent = true
		var e shellyws.Error
		var probe map[string]json.RawMessage
		if json.Unmarshal(raw, &probe) == nil && probe != nil && json.Unmarshal(raw, &e) == nil {
			f.Error = &e
		}
	}
	return f
}

// Notification is a notification frame from the device.
type Notification struct {
	Src, Dst, Method string
	// Params is the raw params member, ts included; nil when absent.
	Params json.RawMessage
	// TS is params.ts, 0 when absent.
	TS float64
}

// FullStatus is a NotifyFullStatus notification.
type FullStatus struct {
	Notification
	// Status is params without ts, keyed by component ("sys", "ws",
	// "switch:0", ...).
	Status map[string]json.RawMessage
}

// StatusDelta is a NotifyStatus notification.
type StatusDelta struct {
	Notification
	// Changes is params without ts: the changed fields per component, the
	// JSON null for a component that disappeared.
	Changes map[string]json.RawMessage
}

// EventNotification is a NotifyEvent notification.
type EventNotification struct {
	Notification
	// Events is params.events in order.
	Events []Event
}

// Event is one entry of a NotifyEvent's events.
type Event struct {
	// Component is the component key, e.g. "input:0" or "sys".
	Component string
	// ID is the component's id, nil for singletons such as sys.
	ID *int
	// Event is the event name, e.g. "single_push".
	Event string
	// TS is the event's ts, 0 when absent.
	TS float64
	// Raw is the whole event object, for members such as cfg_rev.
	Raw json.RawMessage
}

// UnexpectedFrameError is returned by NextNotification and the Expect
// helpers when the next frame is not what they expect. The frame is consumed.
type UnexpectedFrameError struct {
	// Want says what was expected, e.g. "NotifyFullStatus".
	Want string
	// Problem says what is wrong with the frame.
	Problem string
	// Frame is the frame that came instead.
	Frame Frame
}

// Error implements error.
func (e *UnexpectedFrameError) Error() string {
	return fmt.Sprintf("shellywstest: want %s, got %s: %s", e.Want, e.Problem, trim(e.Frame.Raw))
}

// NextNotification returns the next frame from Next if it is a notification.
// It skips nothing: any other frame is consumed and returned inside an
// *UnexpectedFrameError.
func (c *Conn) NextNotification(ctx context.Context) (*Notification, error) {
	_, n, err := c.nextNotification(ctx, "a notification")
	return n, err
}

func (c *Conn) nextNotification(ctx context.Context, want string) (Frame, *Notification, error) {
	f, err := c.Next(ctx)
	if err != nil {
		return f, nil, err
	}
	if !f.IsNotification() {
		return f, nil, &UnexpectedFrameError{Want: want, Problem: describe(f), Frame: f}
	}
	n := &Notification{Src: f.Src, Dst: f.Dst, Method: f.Method, Params: f.Params}
	var p struct {
		TS float64 `json:"ts"`
	}
	if json.Unmarshal(f.Params, &p) == nil {
		n.TS = p.TS
	}
	return f, n, nil
}

// describe names what kind of frame f is, for UnexpectedFrameError.
func describe(f Frame) string {
	switch {
	case f.Binary:
		return "a binary message"
	case !f.object:
		return "a message that is not a JSON object"
	case f.IsResponse():
		return "a response with id " + string(f.ID) + " nobody waits for"
	case f.Method != "" && f.ID != nil:
		return "a request " + f.Method + " with id " + string(f.ID)
	case f.Method != "":
		return "notification " + f.Method
	default:
		return "an object that is neither notification nor response"
	}
}

// expect reads the next notification, requires method and decodes its
// params into an object with a numeric ts, which it removes.
func (c *Conn) expect(ctx context.Context, method string) (Frame, *Notification, map[string]json.RawMessage, error) {
	f, n, err := c.nextNotification(ctx, method)
	if err != nil {
		return f, nil, nil, err
	}
	bad := func(problem string) error {
		return &UnexpectedFrameError{Want: method, Problem: problem, Frame: f}
	}
	if n.Method != method {
		return f, nil, nil, bad("notification " + n.Method)
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(n.Params, &params); err != nil || params == nil {
		return f, nil, nil, bad(method + " whose params is not an object")
	}
	var ts float64
	if raw, ok := params["ts"]; !ok {
		return f, nil, nil, bad(method + " without params.ts")
	} else if err := json.Unmarshal(raw, &ts); err != nil || string(raw) == "null" {
		return f, nil, nil, bad(method + " whose params.ts is not a number")
	}
	delete(params, "ts")
	return f, n, params, nil
}

// ExpectFullStatus returns the next frame, which must be a NotifyFullStatus
// with object params holding a numeric ts; anything else is consumed and
// returned inside an *UnexpectedFrameError.
func (c *Conn) ExpectFullStatus(ctx context.Context) (*FullStatus, error) {
	_, n, params, err := c.expect(ctx, MethodNotifyFullStatus)
	if err != nil {
		return nil, err
	}
	return &FullStatus{Notification: *n, Status: params}, nil
}

// ExpectStatus returns the next frame, which must be a NotifyStatus with
// object params holding a numeric ts; see ExpectFullStatus.
func (c *Conn) ExpectStatus(ctx context.Context) (*StatusDelta, error) {
	_, n, params, err := c.expect(ctx, MethodNotifyStatus)
	if err != nil {
		return nil, err
	}
	return &StatusDelta{Notification: *n, Changes: params}, nil
}

// ExpectEvent returns the next frame, which must be a NotifyEvent with
// object params holding a numeric ts and an array of event objects, each
// with a string component and event; see ExpectFullStatus.
func (c *Conn) ExpectEvent(ctx context.Context) (*EventNotification, error) {
	f, n, params, err := c.expect(ctx, MethodNotifyEvent)
	if err != nil {
		return nil, err
	}
	bad := func(problem string) error {
		return &UnexpectedFrameError{Want: MethodNotifyEvent, Problem: problem, Frame: f}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(params["events"], &raws); err != nil || raws == nil {
		return nil, bad("NotifyEvent without an events array")
	}
	ev := &EventNotification{Notification: *n, Events: make([]Event, 0, len(raws))}
	for i, raw := range raws {
		var e struct {
			Component *string `json:"component"`
			ID        *int    `json:"id"`
			Event     *string `json:"event"`
			TS        float64 `json:"ts"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Component == nil || e.Event == nil {
			return nil, bad(fmt.Sprintf("NotifyEvent whose events[%d] lacks a string component or event", i))
		}
		ev.Events = append(ev.Events, Event{Component: *e.Component, ID: e.ID, Event: *e.Event, TS: e.TS, Raw: raw})
	}
	return ev, nil
}

// ExpectFullStatusT is ExpectFullStatus bounded by DefaultTimeout; it fails
// the test on error.
func (c *Conn) ExpectFullStatusT(t testing.TB) *FullStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	fs, err := c.ExpectFullStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// ExpectStatusT is ExpectStatus bounded by DefaultTimeout; it fails the test
// on error.
func (c *Conn) ExpectStatusT(t testing.TB) *StatusDelta {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	d, err := c.ExpectStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ExpectEventT is ExpectEvent bounded by DefaultTimeout; it fails the test
// on error.
func (c *Conn) ExpectEventT(t testing.TB) *EventNotification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	ev, err := c.ExpectEvent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
