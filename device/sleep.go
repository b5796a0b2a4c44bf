package device

import (
	"context"
	"time"

	"github.com/shellyws/shellyws"
)

// DefaultClockSync is how long into a wake a sleeping device's clock is
// set; see Options.ClockSync.
const DefaultClockSync = time.Second

// resetDeepSleep is the ESP32 reset reason of a wake from deep sleep, as
// the sleeping models' dumps report it.
const resetDeepSleep = 8

// Wake reasons a sleeping device reports in sys.wakeup_reason.
const (
	BootPowerOn         = "poweron"
	BootDeepSleepWake   = "deepsleep_wake"
	BootSoftwareRestart = "software_restart"
	CausePeriodic       = "periodic"
	CauseUndefined      = "undefined"
)

// WakeInfo describes a sleeping device's wake, for Options.OnWake and
// Options.OnSleep.
type WakeInfo struct {
	// Boot and Cause are what sys.wakeup_reason reports for the wake.
	Boot, Cause string
	// Result is how the wake went; zero in OnWake.
	Result shellyws.WakeResult
	// Next is the time to the next wake: the period after a sleep, the
	// boot time after a reboot; zero in OnWake.
	Next time.Duration
}

// Sleeping reports whether the device is a sleeping (battery) device: its
// model has a sys.wakeup_period above 0, or Options.WakeupPeriod set one.
func (d *Device) Sleeping() bool { return d.sleepCycle != nil }

func (d *Device) sleeping() bool { return d.sleepCycle != nil }

// WakeupPeriod returns the time from falling asleep to the next wake; 0
// for a device that is always on.
func (d *Device) WakeupPeriod() time.Duration {
	if !d.sleeping() {
		return 0
	}
	return d.period
}

// State returns the component's state, and shellyws.StateAsleep for a
// sleeping device that has not woken yet.
func (d *Device) State() shellyws.State {
	if d.sleeping() {
		d.mu.Lock()
		asleep := !d.awake
		d.mu.Unlock()
		if asleep {
			return shellyws.StateAsleep
		}
	}
	return d.comp.State()
}

// startSleeping is Start of a sleeping device: a timer wakes it, the wake
// runs on the timer's goroutine, and between wakes the device holds only
// its state and one timer.
func (d *Device) startSleeping(ctx context.Context) error {
	d.mu.Lock()
	if err := d.beginLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	d.ctx = ctx
	d.stopped = make(chan struct{})
	d.bootChannelsCtx(ctx)
	d.wakeBoot, d.wakeCause, d.resetReason = BootPowerOn, CauseUndefined, resetPowerOn
	d.mu.Unlock()
	if d.onDown != nil {
		d.onDown() // asleep until the first wake: nothing listens
	}
	d.mu.Lock()
	d.nextWake = d.startTimerLocked(d.firstWake, d.wake) // after onDown: the wake opens the listener
	d.mu.Unlock()
	context.AfterFunc(ctx, d.stopSleeping)
	return nil
}

// Wait returns once a device started with Start (or Run) has stopped: its
// context ended, its component closed its connection, and every timer,
// wake and channel it started has returned. It returns at once if the
// device was not started.
func (d *Device) Wait() {
	if !d.sleeping() {
		d.timers.Wait()
		return
	}
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped == nil {
		return
	}
	<-stopped
	d.timers.Wait()
}

// stopSleeping ends a started device: no more wakes; the wake under way
// ends with its context.
func (d *Device) stopSleeping() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = false
	d.stopTimerLocked(d.nextWake)
	d.nextWake = nil
	d.stopTimerLocked(d.clockTimer)
	d.clockTimer = nil
	d.stopRebootLocked()
	for _, pt := range d.parts {
		pt.stopLocked(d)
	}
	for _, s := range services {
		s.stopLocked(d)
	}
	close(d.stopped)
}

// wake is the wake timer firing: the device boots from deep sleep (RAM
// lost: outputs, readings and restart_required start again), listens,
// runs one wake of its component, and sleeps until the next.
func (d *Device) wake(self *time.Timer) {
	d.mu.Lock()
	if d.nextWake != self || !d.running {
		d.mu.Unlock()
		return
	}
	d.nextWake = nil
	d.awake = true
	if d.wakeBoot != BootPowerOn {
		d.tick++ // readings moved while it slept; the first wake has the dump's
	}
	d.restartRequired = false
	d.bootedAt = d.now()
	for _, pt := range d.parts {
		pt.stopLocked(d)
		pt.bootLocked(d)
	}
	for _, s := range services {
		s.stopLocked(d)
		s.bootLocked(d, d.bootedAt)
	}
	if d.clockSync >= 0 {
		d.clockTimer = d.startTimerLocked(d.clockSync, d.clockSynced)
	}
	ctx := d.ctx
	info := WakeInfo{Boot: d.wakeBoot, Cause: d.wakeCause}
	d.mu.Unlock()
	d.up() // listening before anyone hears of the wake
	if d.onWake != nil {
		d.onWake(info)
	}
	res, err := d.comp.Wake(ctx)
	d.channelsDown() // asleep: the radio is off
	if d.onDown != nil {
		d.onDown()
	}

	d.mu.Lock()
	d.awake = false
	d.stopTimerLocked(d.clockTimer)
	d.clockTimer = nil
	if !d.running || err != nil {
		d.mu.Unlock()
		return
	}
	next := d.period
	d.wakeBoot, d.wakeCause, d.resetReason = BootDeepSleepWake, CausePeriodic, resetDeepSleep
	if res.End == shellyws.WakeInterrupted { // Shelly.Reboot
		next = d.bootTime
		d.wakeBoot, d.wakeCause, d.resetReason = BootSoftwareRestart, CauseUndefined, resetSoftware
	}
	d.nextWake = d.startTimerLocked(next, d.wake)
	d.mu.Unlock()
	if d.onSleep != nil {
		info.Result, info.Next = res, next
		d.onSleep(info)
	}
}

// clockSynced is the clock timer firing: SNTP has set the clock, so "ts",
// sys.time and sys.unixtime are real from here to the end of the wake.
func (d *Device) clockSynced(self *time.Timer) {
	d.mu.Lock()
	if d.clockTimer != self || !d.awake {
		d.mu.Unlock()
		return
	}
	d.clockTimer = nil
	d.mu.Unlock()
	d.comp.SetClockSynced()
}

// rebootSleeping is a sleeping device's Shelly.Reboot firing: the wake
// ends at once without a sleep event, and the next wake comes after the
// boot time. A wake that its cap had ended already only moves the next
// wake.
func (d *Device) rebootSleeping() {
	if d.comp.InterruptWake() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running || d.nextWake == nil {
		return
	}
	d.stopTimerLocked(d.nextWake)
	d.wakeBoot, d.wakeCause, d.resetReason = BootSoftwareRestart, CauseUndefined, resetSoftware
	d.nextWake = d.startTimerLocked(d.bootTime, d.wake)
}
