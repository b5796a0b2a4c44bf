package device

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Light is a dimmable output (light, rgb, rgbw, cct); guarded by
// Device.mu. Fields the dump lacks (rgb on a plain light) are not settable.
type Light struct {
	k     string
	typ   string
	id    int
	st    *jsonv.Object
	meter bool
	base  float64

	output     bool
	source     string
	touched    bool
	brightness float64
	rgb        json.RawMessage // nil: the dump's
	white, ct  *float64
	timer      *time.Timer
	timerStart time.Time
	timerDur   time.Duration
	m          meter
}

func newLight(d *Device, key string, id int, st *jsonv.Object) *Light {
	l := &Light{k: key, typ: keyType(key), id: id, st: st, source: SourceInit}
	if src, ok := st.String("source"); ok {
		l.source = src
	}
	if on, ok := st.Get("output"); ok {
		l.output, _ = on.(bool)
	}
	if l.output {
		l.m.onSince = d.bootedAt
	}
	l.brightness, _ = st.Number("brightness")
	l.meter = st.Has("apower")
	l.base, _ = st.Object("aenergy").Number("total")
	return l
}

func (l *Light) key() string { return l.k }

func (l *Light) fieldsLocked() jsonv.Patch {
	p := jsonv.Patch{{Key: "output", Val: l.output}, {Key: "source", Val: l.source}}
	if l.st.Has("brightness") {
		p = append(p, jsonv.Field{Key: "brightness", Val: l.brightness})
	}
	if l.rgb != nil {
		p = append(p, jsonv.Field{Key: "rgb", Val: l.rgb})
	}
	if l.white != nil {
		p = append(p, jsonv.Field{Key: "white", Val: *l.white})
	}
	if l.ct != nil {
		p = append(p, jsonv.Field{Key: "ct", Val: *l.ct})
	}
	if l.timer != nil {
		p = append(p, jsonv.Field{Key: "timer_started_at", Val: unixTS(l.timerStart)},
			jsonv.Field{Key: "timer_duration", Val: l.timerDur.Seconds()})
	}
	return p
}

// powerLocked is the metering part of the status: the load scaled by
// brightness while on.
func (l *Light) powerLocked(d *Device, now time.Time) jsonv.Patch {
	p := d.driftLocked(l.k, l.st)
	if !l.meter {
		return p
	}
	apower := 0.0
	if l.output {
		apower = round(d.load*l.brightness/100, 1)
	}
	if !l.touched && d.tick == 0 {
		return p
	}
	p = setField(p, "apower", apower)
	if l.st.Has("current") {
		voltage, _ := l.st.Number("voltage")
		cur := 0.0
		if voltage > 0 {
			cur = round(apower/voltage, 3)
		}
		p = setField(p, "current", cur)
	}
	if l.st.Has("aenergy") {
		p = setField(p, "aenergy", l.m.aenergy(l.base, now, l.output, apower))
	}
	return p
}

func (l *Light) patchLocked(d *Device, now time.Time) jsonv.Patch {
	return append(l.fieldsLocked(), l.powerLocked(d, now)...)
}

func (l *Light) readingsLocked(d *Device, now time.Time) jsonv.Patch {
	return withID(l.st, l.powerLocked(d, now))
}

func (l *Light) stopLocked(d *Device) {
	d.stopTimerLocked(l.timer)
	l.timer = nil
}

func (l *Light) bootLocked(*Device) { l.source = SourceInit }

// lightOf returns the light a request names; the namespace is the method's.
func (d *Device) lightOf(req *shellyws.Request) (*Light, error) {
	typ := ""
	for i := range len(req.Method) {
		if req.Method[i] == '.' {
			typ = req.Method[:i]
			break
		}
	}
	for _, pt := range d.parts {
		if l, ok := pt.(*Light); ok && strings.EqualFold(Namespace(l.typ), typ) {
			key, err := d.keyOf(l.typ, true, req)
			if err != nil {
				return nil, err
			}
			if l, ok := d.partOf(key).(*Light); ok {
				return l, nil
			}
			return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id for %s", key)
		}
	}
	return nil, shellyws.Errorf(shellyws.CodeNoHandler, "No handler for %s", req.Method)
}

// lightSet serves Light.Set (and RGB, RGBW, CCT .Set): null on success;
// Toggle answers was_on like Switch.Toggle.
func lightSet(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	l, err := d.lightOf(req)
	if err != nil {
		return nil, err
	}
	var p struct {
		On          *bool           `json:"on"`
		Brightness  *float64        `json:"brightness"`
		RGB         *[3]int         `json:"rgb"`
		White       *float64        `json:"white"`
		CT          *float64        `json:"ct"`
		ToggleAfter *float64        `json:"toggle_after"`
		Transition  json.RawMessage `json:"transition_duration"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.On == nil && p.Brightness == nil && p.RGB == nil && p.White == nil && p.CT == nil {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Missing required argument: one of 'on', 'brightness'%s",
			map[bool]string{true: ", 'rgb', 'white', 'ct'", false: ""}[l.typ != "light"])
	}
	if p.Brightness != nil && (*p.Brightness < 0 || *p.Brightness > 100) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'brightness': must be 0 to 100")
	}
	if p.RGB != nil {
		if !l.st.Has("rgb") {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'rgb': %s has no colour", l.k)
		}
		for _, c := range p.RGB {
			if c < 0 || c > 255 {
				return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'rgb': each of the three values must be 0 to 255")
			}
		}
	}
	if p.White != nil && (!l.st.Has("white") || *p.White < 0 || *p.White > 255) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'white': must be 0 to 255 on a component with white")
	}
	if p.CT != nil && (!l.st.Has("ct") || *p.CT < 1000 || *p.CT > 10000) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'ct': must be kelvin 1000 to 10000 on a component with ct")
	}
	after, err := toggleAfter(p.ToggleAfter)
	if err != nil {
		return nil, err
	}
	return nil, d.setLight(l, sourceOf(req), after, func(l *Light) {
		if p.On != nil {
			l.output = *p.On
		}
		if p.Brightness != nil {
			l.brightness = *p.Brightness
		}
		if p.RGB != nil {
			l.rgb = mustJSON(p.RGB)
		}
		if p.White != nil {
			l.white = p.White
		}
		if p.CT != nil {
			l.ct = p.CT
		}
	})
}

func lightToggle(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	l, err := d.lightOf(req)
	if err != nil {
		return nil, err
	}
	var was bool
	err = d.setLight(l, sourceOf(req), 0, func(l *Light) {
		was = l.output
		l.output = !l.output
	})
	if err != nil {
		return nil, err
	}
	return wasOnResult{was}, nil
}

// setLight applies change to l and sends the delta.
func (d *Device) setLight(l *Light, source string, after time.Duration, change func(*Light)) error {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if after > 0 && !d.running {
		d.mu.Unlock()
		return errNotRunning
	}
	now := d.now()
	was := l.output
	wasPower := 0.0
	if was {
		wasPower = round(d.load*l.brightness/100, 1)
	}
	d.stopTimerLocked(l.timer)
	l.timer = nil
	change(l)
	l.m.set(was, l.output, now, wasPower)
	l.source, l.touched = source, true
	if after > 0 {
		l.timerStart, l.timerDur = now, after
		l.timer = d.startTimerLocked(after, func(self *time.Timer) { d.lightBack(l, self) })
	}
	delta := map[string]any{l.k: withID(l.st, l.fieldsLocked()).Map(l.st)}
	d.mu.Unlock()
	d.notify(delta)
	return nil
}

// lightBack is a light's toggle_after timer firing.
func (d *Device) lightBack(l *Light, self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if l.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	l.timer = nil
	l.output = !l.output
	l.source = SourceTimer
	delta := map[string]any{l.k: withID(l.st, l.fieldsLocked()).Map(l.st)}
	d.mu.Unlock()
	d.notify(delta)
}
