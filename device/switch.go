package device

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// interval is a stretch of time during which an output was on.
type interval struct{ from, to time.Time }

// byMinuteWindow is how far back by_minute looks; older intervals are pruned.
const byMinuteWindow = 5 * time.Minute

// meter integrates the energy of an output drawing Device.load while on;
// guarded by Device.mu.
type meter struct {
	energyWh float64    // energy of the closed on-intervals
	onSince  time.Time  // start of the open on-interval; zero while off
	recent   []interval // closed on-intervals of the last minutes, for by_minute
}

// set records the output switching to on at now.
func (m *meter) set(was, on bool, now time.Time, load float64) {
	if on == was {
		return
	}
	if on {
		m.onSince = now
	} else {
		m.energyWh += load * now.Sub(m.onSince).Hours()
		m.recent = append(m.recent, interval{m.onSince, now})
		m.onSince = time.Time{}
	}
	keep := m.recent[:0]
	for _, iv := range m.recent {
		if now.Sub(iv.to) < byMinuteWindow {
			keep = append(keep, iv)
		}
	}
	m.recent = keep
}

// energyWhBetween returns the energy drawn in [a, b).
func (m *meter) energyWhBetween(a, b, now time.Time, on bool, load float64) float64 {
	overlap := func(from, to time.Time) time.Duration {
		if from.Before(a) {
			from = a
		}
		if to.After(b) {
			to = b
		}
		if to.Before(from) {
			return 0
		}
		return to.Sub(from)
	}
	var dur time.Duration
	for _, iv := range m.recent {
		dur += overlap(iv.from, iv.to)
	}
	if on {
		dur += overlap(m.onSince, now)
	}
	return load * dur.Hours()
}

// aenergy is the aenergy object of a metering output: total in Wh, the last
// three complete minutes in mWh, newest first.
func (m *meter) aenergy(base float64, now time.Time, on bool, load float64) jsonv.Patch {
	total := base + m.energyWh
	if on {
		total += load * now.Sub(m.onSince).Hours()
	}
	last := now.Truncate(time.Minute).Add(-time.Minute)
	var by [3]float64
	for i := range by {
		from := last.Add(-time.Duration(i) * time.Minute)
		by[i] = round(1000*m.energyWhBetween(from, from.Add(time.Minute), now, on, load), 3)
	}
	return jsonv.Patch{{Key: "total", Val: round(total, 3)}, {Key: "by_minute", Val: by}, {Key: "minute_ts", Val: last.Unix()}}
}

// Switch is a relay, switch:N, with metering where its status has apower:
// Switch.Set, Toggle and toggle_after over RPC, initial_state at boot,
// energy counted while on. Device.Switch returns it, for the hardware's
// side: OnOutput drives a real relay, SetMeter feeds real readings.
type Switch struct {
	d     *Device
	k     string
	id    int
	st    *jsonv.Object
	meter bool    // the dump reports apower
	base  float64 // the dump's aenergy.total
	load  float64 // the dump's apower while on, else Device.load

	output     bool
	source     string
	touched    bool        // changed since boot: metering is the device's, not the dump's
	initial    string      // config initial_state: what the relay does at boot
	timer      *time.Timer // toggle_after; nil when none runs
	timerStart time.Time
	timerDur   time.Duration
	m          meter
	voltage    float64       // from SetMeter; 0: the dump's
	onOutput   func(on bool) // the hardware's hook
}

func newSwitch(d *Device, key string, id int, st, cfg *jsonv.Object) *Switch {
	s := &Switch{d: d, k: key, id: id, st: st, source: SourceInit, load: d.load}
	s.initial, _ = cfg.String("initial_state")
	if src, ok := st.String("source"); ok {
		s.source = src
	}
	s.meter = st.Has("apower")
	s.base, _ = st.Object("aenergy").Number("total")
	if on, ok := st.Get("output"); ok {
		s.output, _ = on.(bool)
	}
	if p, ok := st.Number("apower"); ok && s.output && p != 0 && !d.loadSet {
		s.load = p
	}
	if s.output {
		s.m.onSince = d.bootedAt
	}
	return s
}

func (s *Switch) key() string { return s.k }

func (s *Switch) patchLocked(d *Device, now time.Time) jsonv.Patch {
	p := jsonv.Patch{{Key: "output", Val: s.output}, {Key: "source", Val: s.source}}
	if s.timer != nil {
		p = append(p, jsonv.Field{Key: "timer_started_at", Val: unixTS(s.timerStart)},
			jsonv.Field{Key: "timer_duration", Val: s.timerDur.Seconds()})
	}
	return append(p, s.powerLocked(d, now)...)
}

// powerLocked is the metering part of the status.
func (s *Switch) powerLocked(d *Device, now time.Time) jsonv.Patch {
	p := d.driftLocked(s.k, s.st)
	if !s.meter {
		return p
	}
	voltage, _ := s.st.Number("voltage")
	if v, ok := p.Get("voltage"); ok {
		voltage = float64(v.(jsonv.Decimal))
	}
	if s.voltage > 0 {
		voltage = s.voltage
		p = setField(p, "voltage", voltage)
	}
	if s.touched || d.tick > 0 {
		apower, current := 0.0, 0.0
		if s.output {
			apower = s.load
			if d.tick > 0 { // telemetry: the load wavers as the voltage does
				apower = round(s.load*(1+d.noise(s.k, "apower")/100), 1)
			}
			if voltage > 0 {
				current = round(math.Abs(apower)/voltage, 3)
			}
		}
		p = setField(p, "apower", apower)
		if s.st.Has("current") {
			p = setField(p, "current", current)
		}
	}
	if s.st.Object("aenergy") != nil {
		p = setField(p, "aenergy", s.m.aenergy(s.base, now, s.output, s.load))
	}
	return p
}

func (s *Switch) readingsLocked(d *Device, now time.Time) jsonv.Patch {
	return withID(s.st, s.powerLocked(d, now))
}

func (s *Switch) stopLocked(d *Device) {
	d.stopTimerLocked(s.timer)
	s.timer = nil
}

// bootLocked sets the relay as its initial_state says: "off", "on",
// "match_input" (the state of the input of the same id), or as it was
// (restore_last, none given).
func (s *Switch) bootLocked(d *Device) {
	now := d.now()
	on := s.output
	switch s.initial {
	case "off":
		on = false
	case "on":
		on = true
	case "match_input":
		if in, ok := d.partOf("input:" + strconv.Itoa(s.id)).(*Input); ok && in.state != nil {
			on = *in.state
		}
	}
	s.m.set(s.output, on, now, s.load)
	s.output, s.source = on, SourceInit
}

// configLocked follows a SetConfig: initial_state applies at the next
// boot.
func (s *Switch) configLocked(_ *Device, cfg *jsonv.Object) {
	s.initial, _ = cfg.String("initial_state")
}

// Key returns the component key, e.g. "switch:0".
func (s *Switch) Key() string { return s.k }

// Output reports whether the relay is on.
func (s *Switch) Output() bool {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return s.output
}

// Set switches the relay as a local actor would, reporting source (the
// firmware's names: "button", "switch", "loopback", "timer", "init" …);
// a change sends a NotifyStatus delta, and OnOutput runs.
func (s *Switch) Set(on bool, source string) {
	_, _ = s.d.setSwitch(s, func(bool) bool { return on }, source, 0)
}

// OnOutput sets the hardware's hook: f runs with the new output after
// every change of it, whoever asked (a server, a timer, Set, a boot), on
// the goroutine that made the change and with no lock of the device held;
// it must not block for long. Set it before Run.
func (s *Switch) OnOutput(f func(on bool)) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.onOutput = f
}

// SetMeter feeds the meter of a metering switch with what the hardware
// measures: power in watts while on (the energy counter integrates it)
// and the mains voltage (0 keeps the current one); current follows from
// them. The new readings are sent as a NotifyStatus delta.
func (s *Switch) SetMeter(power, voltage float64) {
	s.d.notifyMu.Lock()
	defer s.d.notifyMu.Unlock()
	s.d.mu.Lock()
	now := s.d.now()
	if s.output {
		// Energy so far at the old power, the rest at the new one.
		s.m.set(true, false, now, s.load)
		s.m.set(false, true, now, s.load)
	}
	s.load, s.touched = power, true
	if voltage > 0 {
		s.voltage = voltage
	}
	var delta map[string]any
	if s.meter {
		pw := jsonv.Patch{{Key: "id", Val: s.id}}
		for _, f := range s.powerLocked(s.d, now) {
			switch f.Key {
			case "apower", "voltage", "current", "aenergy":
				pw = append(pw, f)
			}
		}
		delta = map[string]any{s.k: pw.Map(s.st)}
	}
	s.d.mu.Unlock()
	s.d.notify(delta)
}

// setField sets key in p, replacing a value it has.
func setField(p jsonv.Patch, key string, v any) jsonv.Patch {
	for i := range p {
		if p[i].Key == key {
			p[i].Val = v
			return p
		}
	}
	return append(p, jsonv.Field{Key: key, Val: v})
}

// switchOf returns the switch a request names.
func (d *Device) switchOf(req *shellyws.Request) (*Switch, error) {
	key, err := d.keyOf("switch", true, req)
	if err != nil {
		return nil, err
	}
	s, _ := d.partOf(key).(*Switch)
	if s == nil {
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id for %s", key)
	}
	return s, nil
}

// wasOnResult is the result of Switch.Set and Switch.Toggle.
type wasOnResult struct {
	WasOn bool `json:"was_on"`
}

func switchSet(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	s, err := d.switchOf(req)
	if err != nil {
		return nil, err
	}
	var p struct {
		On          *bool    `json:"on"`
		ToggleAfter *float64 `json:"toggle_after"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.On == nil {
		return nil, missingArg("on")
	}
	after, err := toggleAfter(p.ToggleAfter)
	if err != nil {
		return nil, err
	}
	on := *p.On
	was, err := d.setSwitch(s, func(bool) bool { return on }, sourceOf(req), after)
	if err != nil {
		return nil, err
	}
	return wasOnResult{was}, nil
}

// toggleAfter checks a toggle_after argument: seconds with a fraction; a
// day bounds it sanely without restricting any real use.
func toggleAfter(v *float64) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if *v <= 0 || *v > 86400 {
		return 0, shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'toggle_after': must be seconds in (0, 86400]")
	}
	return time.Duration(*v * float64(time.Second)), nil
}

func switchToggle(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	s, err := d.switchOf(req)
	if err != nil {
		return nil, err
	}
	was, err := d.setSwitch(s, func(was bool) bool { return !was }, sourceOf(req), 0)
	if err != nil {
		return nil, err
	}
	return wasOnResult{was}, nil
}

// SetSwitch switches switch:0 as a local actor would (a wall switch, a
// schedule), reporting source, e.g. "button", "loopback" or "init". A change
// of output or source sends a NotifyStatus delta. It does nothing on a
// model without switch:0.
func (d *Device) SetSwitch(on bool, source string) {
	if s, ok := d.partOf("switch:0").(*Switch); ok {
		_, _ = d.setSwitch(s, func(bool) bool { return on }, source, 0)
	}
}

// Toggle flips switch:0 as SetSwitch does.
func (d *Device) Toggle(source string) {
	if s, ok := d.partOf("switch:0").(*Switch); ok {
		_, _ = d.setSwitch(s, func(was bool) bool { return !was }, source, 0)
	}
}

// Output reports whether switch:0 (or light:0) is on.
func (d *Device) Output() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch pt := d.partOf("switch:0").(type) {
	case *Switch:
		return pt.output
	}
	if l, ok := d.partOf("light:0").(*Light); ok {
		return l.output
	}
	return false
}

// setSwitch switches s to next(current) and, with toggleAfter > 0, starts
// the timer that flips it back. It cancels a running toggle_after timer, as
// the firmware does for every new command.
func (d *Device) setSwitch(s *Switch, next func(bool) bool, source string, after time.Duration) (wasOn bool, err error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if after > 0 && !d.running {
		d.mu.Unlock()
		return false, errNotRunning
	}
	now := d.now()
	wasOn = s.output
	on := next(wasOn)
	hadTimer := s.timer != nil
	d.stopTimerLocked(s.timer)
	s.timer = nil
	changed := on != wasOn || source != s.source || hadTimer || after > 0
	s.m.set(wasOn, on, now, s.load)
	s.output, s.source, s.touched = on, source, true
	if after > 0 {
		s.timerStart, s.timerDur = now, after
		s.timer = d.startTimerLocked(after, func(self *time.Timer) { d.toggleBack(s, self) })
	}
	delta, power := d.switchDeltasLocked(s, now)
	hook := s.onOutput
	d.mu.Unlock()
	if changed {
		d.notify(delta, power)
	}
	if on != wasOn {
		if hook != nil {
			hook(on)
		}
		d.emit(switchEvent(s.id, on))
	}
	return wasOn, nil
}

// switchEvent is the webhook event of a relay switching.
func switchEvent(id int, on bool) event {
	if on {
		return event{Component: "switch", ID: id, Event: "switch.on"}
	}
	return event{Component: "switch", ID: id, Event: "switch.off"}
}

// toggleBack is the toggle_after timer firing.
func (d *Device) toggleBack(s *Switch, self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if s.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	s.timer = nil
	now := d.now()
	s.m.set(s.output, !s.output, now, s.load)
	s.output = !s.output
	s.source = SourceTimer
	delta, power := d.switchDeltasLocked(s, now)
	hook, on := s.onOutput, s.output
	d.mu.Unlock()
	d.notify(delta, power)
	if hook != nil {
		hook(on)
	}
	d.emit(switchEvent(s.id, on))
}

// switchDeltasLocked returns the NotifyStatus delta of a switch change and,
// with PowerDeltas on a metering switch, the metering delta that follows.
func (d *Device) switchDeltasLocked(s *Switch, now time.Time) (delta, power map[string]any) {
	sw := map[string]any{"id": s.id, "output": s.output, "source": s.source}
	if s.timer != nil {
		sw["timer_started_at"], sw["timer_duration"] = unixTS(s.timerStart), s.timerDur.Seconds()
	}
	delta = map[string]any{s.k: sw}
	if d.powerDeltas && s.meter {
		pw := jsonv.Patch{{Key: "id", Val: s.id}}
		for _, f := range s.powerLocked(d, now) {
			if f.Key == "apower" || f.Key == "current" || f.Key == "aenergy" {
				pw = append(pw, f)
			}
		}
		power = map[string]any{s.k: pw.Map(s.st)}
	}
	return delta, power
}
