package device

import (
	"context"
	"strings"

	"github.com/shellyws/shellyws"
)

// SimInputMethod is the simulator's control method that presses an input.
// It is not a method of the device: the device serves it only to requests
// whose context went through WithSimControl (the simulator's inbound -http
// channel) and to clients of its inbound websocket, never on the outbound
// connection, and Shelly.ListMethods never lists it.
const SimInputMethod = "Sim.Input"

type simKey struct{}

// WithSimControl marks ctx as coming from a channel that may use the
// simulator's control methods (Sim.*). The simulator's inbound HTTP server
// marks every request it serves; the outbound connection never is.
func WithSimControl(ctx context.Context) context.Context {
	return context.WithValue(ctx, simKey{}, true)
}

func simAllowed(ctx context.Context) bool {
	ok, _ := ctx.Value(simKey{}).(bool)
	return ok
}

// IsSim reports whether method is one of the simulator's control methods
// (case-insensitively).
func IsSim(method string) bool { return strings.EqualFold(method, SimInputMethod) }

// HandleSim serves the simulator's control methods: Sim.Input
// {"id":N,"event":"single_push"} (also double_push, long_push, btn_down,
// btn_up) makes input:N emit that event as a NotifyEvent, the way the
// firmware reports a button. Other methods get 404.
func (d *Device) HandleSim(_ context.Context, req *shellyws.Request) (any, error) {
	if !IsSim(req.Method) {
		return nil, shellyws.Errorf(shellyws.CodeNoHandler, "No handler for %s", req.Method)
	}
	var p struct {
		ID    *int    `json:"id"`
		Event *string `json:"event"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	if p.Event == nil {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Missing required argument 'event': one of %s", strings.Join(inputEvents, ", "))
	}
	return nil, d.InputEvent(*p.ID, *p.Event)
}

// InputEvent makes input:id emit event (single_push, double_push,
// long_push, btn_down or btn_up) as a NotifyEvent; see Input.Push.
func (d *Device) InputEvent(id int, event string) error {
	in := d.Input(id)
	if in == nil {
		return shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", id)
	}
	return in.Push(event)
}
