package device

import (
	"context"
	"crypto/x509"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/shellyws/shellyws"
)

// Defaults of Options.
const (
	// DefaultRebootDelay is how long Shelly.Reboot waits when the request
	// has no delay_ms, about what a real device takes.
	DefaultRebootDelay = time.Second
	// DefaultLoad is the power in watts the simulated appliance draws while
	// the relay is on.
	DefaultLoad = 60.0
)

// maxMinRebootDelay caps the least delay Shelly.Reboot honours; see
// Options.RebootDelay.
const maxMinRebootDelay = 500 * time.Millisecond

// Switch sources the simulator reports, as the firmware names them.
const (
	// SourceWS is the source of a change requested on a websocket, the
	// outbound one or an inbound client.
	SourceWS = "WS_in"
	// SourceHTTP is the source of a change requested over HTTP.
	SourceHTTP = "HTTP_in"
	// SourceInit is the source after boot and after Shelly.Reboot.
	SourceInit = "init"
	// SourceTimer is the source of the flip-back of Switch.Set's
	// toggle_after.
	SourceTimer = "timer"
)

// Options configure a Device. The zero value is a device with a random id,
// its Outbound Websocket disabled, and no logging.
type Options struct {
	// ID is the device id, the src of every frame, e.g.
	// "shellyplus1pm-c049ef8cf4e0"; it must pass CheckID. sys.mac is
	// derived from it. Default: RandomID().
	ID string
	// Store keeps the Outbound Websocket config across restarts.
	// Default: a shellyws.MemoryStore holding shellyws.DefaultConfig().
	Store shellyws.ConfigStore
	// UserCA loads the PEM bundle used with ssl_ca "user_ca.pem"
	// (shellyws.WithUserCA). Default: none.
	UserCA func() ([]byte, error)
	// RootCAs is the built-in bundle used with ssl_ca "ca.pem" and null
	// (shellyws.WithRootCAs). Default: the system roots.
	RootCAs *x509.CertPool
	// Logger receives the component's log and a debug line per request.
	// Default: no logging.
	Logger *slog.Logger
	// Extra are more component options, applied after the device's own,
	// e.g. shellyws.WithBackoff or shellyws.WithOnConnect. They must not
	// replace WithDispatcher, WithFullStatus or WithOnConfigSaved, which
	// the device sets. Default: none.
	Extra []shellyws.Option

	// RebootDelay is how long Shelly.Reboot waits when the request has no
	// delay_ms. A smaller delay_ms is raised to min(RebootDelay, 500 ms) so
	// that the response leaves before the connection closes. Tests set a
	// few milliseconds. Default: DefaultRebootDelay (1 s).
	RebootDelay time.Duration
	// Load is the power in watts drawn while the relay is on; apower,
	// current, aenergy and temperature follow from it. Default: DefaultLoad.
	Load float64
	// PowerDeltas makes every switch change send a second NotifyStatus
	// with the new apower, current and aenergy, as a real device does
	// once its meter has settled. Off, a change sends only
	// {"switch:0":{"id":0,"output":...,"source":...}}. Default: off.
	PowerDeltas bool
	// OnRequest, if set, is called after each request the component's
	// Dispatcher served, on the outbound connection or on the inbound
	// channels of a shellyws.Handler, with the error it was answered with
	// (nil on success), on the goroutine that served it; the simulator
	// prints requests with it. Requests served through Mux directly skip
	// it. It must not block for long: the component bounds requests in
	// flight. Default: none.
	OnRequest func(req *shellyws.Request, err error)
	// Now is the clock for uptime, unixtime, energy and notification
	// timestamps (it is passed on with shellyws.WithClock). Timers such as
	// the reboot delay run on real time. Default: time.Now.
	Now func() time.Time
}

// Device is a simulated Shelly Plus 1PM: the components sys, wifi, cloud,
// mqtt, ble, ws, switch:0 (with power metering) and input:0, the RPC methods
// servers call over the Outbound Websocket, and the notifications a real
// device sends. Its methods are safe for concurrent use.
type Device struct {
	id, mac     string
	comp        *shellyws.Component
	mux         *shellyws.Mux
	log         *slog.Logger
	now         func() time.Time
	rebootDelay time.Duration
	powerDeltas bool
	onRequest   func(*shellyws.Request, error)

	// Per-device constants, derived from the MAC so a fleet looks varied.
	load, voltage, ambientC float64
	rssi                    int
	staIP                   string

	// notifyMu orders state changes with their notifications: it is taken
	// before mu and held while the notification is queued, so a server
	// sees deltas in the order the changes happened.
	notifyMu sync.Mutex

	mu              sync.Mutex
	bootTime        time.Time
	resetReason     int
	cfgRev          int
	restartRequired bool
	sw              switchState
	running         bool // Run is running
	ran             bool // Run was called
	rebootTimer     *time.Timer
	rebootAt        time.Time
	timers          sync.WaitGroup // timer callbacks Run must wait for
}

// initialCfgRev is the sys.cfg_rev of a fresh device.
const initialCfgRev = 1

// New returns a device built from o. It fails if the id is invalid or the
// store cannot be loaded.
func New(o Options) (*Device, error) {
	if o.ID == "" {
		o.ID = RandomID()
	}
	if err := CheckID(o.ID); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RebootDelay <= 0 {
		o.RebootDelay = DefaultRebootDelay
	}
	if o.Load <= 0 {
		o.Load = DefaultLoad
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.ID))
	seed := h.Sum32()
	d := &Device{
		id:          o.ID,
		mac:         MACFromID(o.ID),
		mux:         shellyws.NewMux(),
		log:         o.Logger.With("device", o.ID),
		now:         now,
		rebootDelay: o.RebootDelay,
		powerDeltas: o.PowerDeltas,
		onRequest:   o.OnRequest,
		load:        o.Load,
		voltage:     229 + float64(seed%40)/10,
		ambientC:    27 + float64(seed/40%30)/10,
		rssi:        -50 - int(seed/1200%30),
		staIP:       fmt.Sprintf("192.0.2.%d", 1+seed/36000%254), // TEST-NET-1: clearly not real
		bootTime:    now(),
		resetReason: resetPowerOn,
		cfgRev:      initialCfgRev,
		sw:          switchState{source: SourceInit},
	}
	opts := []shellyws.Option{
		shellyws.WithLogger(o.Logger),
		shellyws.WithDispatcher(shellyws.DispatcherFunc(d.dispatch)),
		shellyws.WithFullStatus(func(context.Context) (map[string]any, error) { return d.Status(), nil }),
		shellyws.WithOnConfigSaved(d.configSaved),
	}
	if o.Store != nil {
		opts = append(opts, shellyws.WithConfigStore(o.Store))
	}
	if o.UserCA != nil {
		opts = append(opts, shellyws.WithUserCA(o.UserCA))
	}
	if o.RootCAs != nil {
		opts = append(opts, shellyws.WithRootCAs(o.RootCAs))
	}
	if o.Now != nil {
		opts = append(opts, shellyws.WithClock(o.Now))
	}
	opts = append(opts, o.Extra...)
	comp, err := shellyws.New(d.id, opts...)
	if err != nil {
		return nil, err
	}
	d.comp = comp
	d.register()
	return d, nil
}

// ID returns the device id.
func (d *Device) ID() string { return d.id }

// MAC returns the MAC the device reports as sys.mac: the upper-cased part of
// the id after the first '-'.
func (d *Device) MAC() string { return d.mac }

// Component returns the device's Outbound Websocket component, for its
// config, state and notifications.
func (d *Device) Component() *shellyws.Component { return d.comp }

// Mux returns the router serving the device's RPC methods, for other
// channels (such as an inbound HTTP handler) to serve the same API.
func (d *Device) Mux() *shellyws.Mux { return d.mux }

// Output reports whether the relay is on.
func (d *Device) Output() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sw.output
}

// Run runs the device until ctx ends: the component's connection and the
// device's timers (Shelly.Reboot's delay, Switch.Set's toggle_after). It
// returns after everything it started has exited. It may be called once;
// a second call returns shellyws.ErrAlreadyRunning.
func (d *Device) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.ran {
		d.mu.Unlock()
		return shellyws.ErrAlreadyRunning
	}
	d.ran, d.running = true, true
	d.mu.Unlock()

	err := d.comp.Run(ctx)

	d.mu.Lock()
	d.running = false
	d.stopTimerLocked(d.rebootTimer)
	d.rebootTimer = nil
	d.stopTimerLocked(d.sw.timer)
	d.sw.timer = nil
	d.mu.Unlock()
	d.timers.Wait()
	return err
}

// startTimerLocked runs fire after delay on a timer Run waits for. fire must
// lock d.mu and check that the timer is still the current one: it may have
// been replaced while fire waited for the lock. The caller holds d.mu and
// has checked d.running.
func (d *Device) startTimerLocked(delay time.Duration, fire func(self *time.Timer)) *time.Timer {
	d.timers.Add(1)
	var self *time.Timer
	self = time.AfterFunc(delay, func() {
		defer d.timers.Done()
		// The caller assigns self while holding d.mu; taking it here
		// makes a timer that fires at once still see the assignment.
		d.mu.Lock()
		t := self
		d.mu.Unlock()
		fire(t)
	})
	return self
}

// stopTimerLocked stops t; a timer that had not fired yet will never call
// its Done, so it is done here.
func (d *Device) stopTimerLocked(t *time.Timer) {
	if t != nil && t.Stop() {
		d.timers.Done()
	}
}

// errNotRunning answers requests that need timers while Run is not running.
var errNotRunning = shellyws.Errorf(shellyws.CodeUnavailable, "Device is not running")

// SetSwitch switches the relay as a local actor would (a wall switch, a
// schedule), reporting source, e.g. "button", "loopback" or "init". A change
// of output or source sends a NotifyStatus delta.
func (d *Device) SetSwitch(on bool, source string) {
	_, _ = d.setSwitch(func(bool) bool { return on }, source, 0)
}

// Toggle flips the relay as SetSwitch does.
func (d *Device) Toggle(source string) {
	_, _ = d.setSwitch(func(was bool) bool { return !was }, source, 0)
}

// setSwitch switches the relay to next(current) and, with toggleAfter > 0,
// starts the timer that flips it back. It cancels a running toggle_after
// timer, as the firmware does for every new command.
func (d *Device) setSwitch(next func(bool) bool, source string, toggleAfter time.Duration) (wasOn bool, err error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if toggleAfter > 0 && !d.running {
		d.mu.Unlock()
		return false, errNotRunning
	}
	now := d.now()
	wasOn = d.sw.output
	on := next(wasOn)
	hadTimer := d.sw.timer != nil
	d.stopTimerLocked(d.sw.timer)
	d.sw.timer = nil
	changed := on != wasOn || source != d.sw.source || hadTimer || toggleAfter > 0
	d.sw.setOutput(on, now, d.load)
	d.sw.source = source
	if toggleAfter > 0 {
		d.sw.timerStart, d.sw.timerDur = now, toggleAfter
		d.sw.timer = d.startTimerLocked(toggleAfter, d.toggleBack)
	}
	delta, power := d.switchDeltasLocked(now)
	d.mu.Unlock()
	if changed {
		d.notify(delta, power)
	}
	return wasOn, nil
}

// toggleBack is the toggle_after timer firing.
func (d *Device) toggleBack(self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if d.sw.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	d.sw.timer = nil
	now := d.now()
	d.sw.setOutput(!d.sw.output, now, d.load)
	d.sw.source = SourceTimer
	delta, power := d.switchDeltasLocked(now)
	d.mu.Unlock()
	d.notify(delta, power)
}

// switchDeltasLocked returns the NotifyStatus delta of a switch change and,
// with PowerDeltas, the metering delta that follows it.
func (d *Device) switchDeltasLocked(now time.Time) (delta, power map[string]any) {
	st := d.switchStatusLocked(now)
	sw := map[string]any{"id": 0, "output": st.Output, "source": st.Source}
	if st.TimerStartedAt != nil {
		sw["timer_started_at"], sw["timer_duration"] = *st.TimerStartedAt, *st.TimerDuration
	}
	delta = map[string]any{"switch:0": sw}
	if d.powerDeltas {
		power = map[string]any{"switch:0": map[string]any{
			"id": 0, "apower": st.APower, "current": st.Current, "aenergy": st.AEnergy,
		}}
	}
	return delta, power
}

// notify queues deltas in order; the caller holds d.notifyMu but not d.mu,
// so nothing the component does while publishing can deadlock with the
// device.
func (d *Device) notify(deltas ...map[string]any) {
	for _, delta := range deltas {
		if delta == nil {
			continue
		}
		if err := d.comp.NotifyStatus(delta); err != nil {
			d.log.Error("simulator: NotifyStatus failed", "err", err)
		}
	}
}

// configSaved runs after Ws.SetConfig (or Component.SetConfig) stored a new
// config: like the firmware it bumps sys.cfg_rev, flags that a restart is
// required, and tells the server with a config_changed event and a sys
// delta.
func (d *Device) configSaved(shellyws.Config) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	d.cfgRev++
	d.restartRequired = true
	rev := d.cfgRev
	d.mu.Unlock()
	err := d.comp.NotifyEvent(shellyws.Event{
		Component: "sys",
		Event:     "config_changed",
		Fields:    map[string]any{"restart_required": true, "cfg_rev": rev},
	})
	if err != nil {
		d.log.Error("simulator: NotifyEvent failed", "err", err)
	}
	d.notify(map[string]any{"sys": map[string]any{"cfg_rev": rev, "restart_required": true}})
}

// scheduleReboot arms the Shelly.Reboot timer.
func (d *Device) scheduleReboot(delay time.Duration) error {
	floor := min(d.rebootDelay, maxMinRebootDelay)
	if delay < floor {
		delay = floor
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return errNotRunning
	}
	if d.rebootTimer != nil {
		left := max(time.Until(d.rebootAt), 0)
		return shellyws.Errorf(shellyws.CodeFailedPrecondition, "shutting down in %d ms", left.Milliseconds())
	}
	d.rebootAt = time.Now().Add(delay)
	d.rebootTimer = d.startTimerLocked(delay, d.reboot)
	return nil
}

// reboot is what a device does when it comes back from Shelly.Reboot: a new
// boot time (uptime restarts from 0), a software reset reason, no pending
// restart, the relay restored (initial_state "restore_last") with source
// "init", and the component restarted with the stored config, which closes
// the connection with 1012 and dials the server it names now.
func (d *Device) reboot(self *time.Timer) {
	d.mu.Lock()
	if d.rebootTimer != self || !d.running {
		d.mu.Unlock()
		return
	}
	d.rebootTimer = nil
	d.bootTime = d.now()
	d.resetReason = resetSoftware
	d.restartRequired = false
	d.stopTimerLocked(d.sw.timer)
	d.sw.timer = nil
	d.sw.source = SourceInit
	d.mu.Unlock()
	d.log.Info("simulator: rebooting")
	d.comp.Restart()
}
