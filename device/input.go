package device

import (
	"strconv"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Input is an input, input:N. A switch input (config type "switch") has a
// state; a button input ("button") reports pushes as events. Device.Input
// returns it, for the hardware's side. Where the device has a switch of
// the same id, the input drives it as the switch's in_mode says: follow
// (the output follows the state), flip (every change toggles), momentary
// (a single push toggles), detached (nothing).
type Input struct {
	d     *Device
	k     string
	id    int
	st    *jsonv.Object
	state *bool // nil: as the dump has it (null for a button)
}

func newInput(d *Device, key string, id int, st *jsonv.Object) *Input {
	in := &Input{d: d, k: key, id: id, st: st}
	if v, ok := st.Get("state"); ok {
		if b, isBool := v.(bool); isBool {
			in.state = &b
		}
	}
	return in
}

func (in *Input) key() string { return in.k }

func (in *Input) patchLocked(*Device, time.Time) jsonv.Patch {
	if in.state == nil || !in.st.Has("state") {
		return nil
	}
	return jsonv.Patch{{Key: "state", Val: *in.state}}
}

func (in *Input) readingsLocked(*Device, time.Time) jsonv.Patch { return nil }
func (in *Input) stopLocked(*Device)                            {}
func (in *Input) bootLocked(*Device)                            {}

// Key returns the component key, e.g. "input:0".
func (in *Input) Key() string { return in.k }

// State reports the state of a switch input (false for a button).
func (in *Input) State() bool {
	in.d.mu.Lock()
	defer in.d.mu.Unlock()
	return in.state != nil && *in.state
}

// SetState sets the state of a switch input, as the hardware saw it
// change: a NotifyStatus delta goes out and the switch of the same id
// follows its in_mode.
func (in *Input) SetState(on bool) {
	d := in.d
	d.notifyMu.Lock()
	d.mu.Lock()
	was := in.state != nil && *in.state
	changed := in.state == nil || was != on
	in.state = &on
	mode := d.inModeLocked(in.id)
	d.mu.Unlock()
	if changed {
		d.notify(map[string]any{in.k: map[string]any{"id": in.id, "state": on}})
	}
	d.notifyMu.Unlock()
	if !changed {
		return
	}
	if on {
		d.emit(event{Component: "input", ID: in.id, Event: "input.toggle_on"})
	} else {
		d.emit(event{Component: "input", ID: in.id, Event: "input.toggle_off"})
	}
	if s := d.Switch(in.id); s != nil {
		switch mode {
		case "follow":
			s.Set(on, "switch")
		case "flip":
			_, _ = d.setSwitch(s, func(was bool) bool { return !was }, "switch", 0)
		}
	}
}

// buttonHooks are the webhook events of the button events (protocol
// section 15.3).
var buttonHooks = map[string]string{
	"single_push": "input.button_push", "double_push": "input.button_doublepush",
	"long_push": "input.button_longpush", "btn_down": "input.button_down", "btn_up": "input.button_up",
}

// inputEvents are the events an input emits.
var inputEvents = []string{"single_push", "double_push", "long_push", "btn_down", "btn_up"}

// Push reports a button event: single_push, double_push, long_push,
// btn_down or btn_up, as a NotifyEvent; a single push toggles the switch of
// the same id when its in_mode is momentary.
func (in *Input) Push(name string) error {
	valid := false
	for _, e := range inputEvents {
		valid = valid || e == name
	}
	if !valid {
		return shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'event': %q is not one of %s", name, strings.Join(inputEvents, ", "))
	}
	d := in.d
	d.notifyMu.Lock()
	id := in.id
	err := d.comp.NotifyEvent(shellyws.Event{Component: in.k, ID: &id, Event: name})
	d.notifyMu.Unlock()
	if err != nil {
		return err
	}
	d.emit(event{Component: "input", ID: in.id, Event: buttonHooks[name]})
	d.mu.Lock()
	mode := d.inModeLocked(in.id)
	d.mu.Unlock()
	if s := d.Switch(in.id); s != nil && mode == "momentary" && name == "single_push" {
		_, _ = d.setSwitch(s, func(was bool) bool { return !was }, "button", 0)
	}
	return nil
}

// inModeLocked is the in_mode of switch:id, "" when there is none.
func (d *Device) inModeLocked(id int) string {
	key := "switch:" + strconv.Itoa(id)
	mode, _ := d.configLocked(key).String("in_mode")
	return mode
}
