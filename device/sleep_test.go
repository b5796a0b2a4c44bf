package device_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

const htID = "shellyplusht-0a1b2c3d4e5f"

// startSleeper starts a Plus H&T with a short cycle against store; the
// cleanup stops it and waits for every timer and wake.
func startSleeper(t *testing.T, o device.Options) *device.Device {
	t.Helper()
	p, err := profile.Builtin("plusht-gen2")
	require.NoError(t, err)
	o.Model, o.ID = p, htID
	if o.WakeupPeriod == 0 {
		o.WakeupPeriod = 200 * time.Millisecond
	}
	if o.AwakeIdle == 0 {
		o.AwakeIdle = 100 * time.Millisecond
	}
	if o.BootTime == 0 {
		o.BootTime = 50 * time.Millisecond
	}
	if o.RebootDelay == 0 {
		o.RebootDelay = 20 * time.Millisecond
	}
	d, err := device.New(withModel(o))
	require.NoError(t, err)
	require.True(t, d.Sleeping())
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() {
		cancel()
		d.Wait()
	})
	return d
}

// expectSleep reads the sleep event and the close with 1000 that end a
// wake.
func expectSleep(t *testing.T, c *shellywstest.Conn) {
	t.Helper()
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "sys", ev.Events[0].Component)
	assert.Equal(t, "sleep", ev.Events[0].Event)
	waitDone(t, c, "the wake's connection")
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(c.Err()), "%v", c.Err())
}

// TestSleepCycle: the cycle's frames in order, nothing dialled while
// asleep, the next wake a period after falling asleep.
func TestSleepCycle(t *testing.T) {
	srv := shellywstest.NewServer(t)
	const period, idle = 300 * time.Millisecond, 300 * time.Millisecond
	d := startSleeper(t, device.Options{Store: enabledStore(srv.URL()), WakeupPeriod: period, AwakeIdle: idle})

	c := srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, htID, fs.Src)
	sys := obj(t, fs.Status["sys"])
	assert.EqualValues(t, 1, sys["wakeup_period"], "whole seconds, at least 1")
	assert.Equal(t, map[string]any{"boot": "poweron", "cause": "undefined"}, sys["wakeup_reason"])
	assert.Nil(t, sys["time"], "the clock is not set this early in a wake")
	assert.Nil(t, sys["unixtime"])
	assert.EqualValues(t, 0, sys["uptime"])
	assert.EqualValues(t, 1, sys["reset_reason"])
	assert.Less(t, fs.TS, 60.0, "ts counts seconds since boot")
	assert.Contains(t, fs.Status, "devicepower:0")
	t1 := obj(t, fs.Status["temperature:0"])["tC"]

	// The last request restarts the idle time, so the device falls asleep
	// no sooner than idle after sending it, and wakes a period after that;
	// a period counted from the wake's start would come sooner.
	lastAsked := time.Now()
	call(t, c, "Shelly.GetDeviceInfo", nil)
	expectSleep(t, c)
	require.Eventually(t, func() bool { return d.State() == shellyws.StateAsleep }, waitTimeout, time.Millisecond)
	assert.Equal(t, 1, srv.Handshakes(), "nothing dialled while asleep")

	c2 := srv.AcceptT(t)
	assert.GreaterOrEqual(t, time.Since(lastAsked), idle+period, "the period counts from falling asleep")
	assert.Equal(t, 2, srv.Handshakes())
	fs2 := c2.ExpectFullStatusT(t)
	sys2 := obj(t, fs2.Status["sys"])
	assert.Equal(t, map[string]any{"boot": "deepsleep_wake", "cause": "periodic"}, sys2["wakeup_reason"])
	assert.EqualValues(t, 8, sys2["reset_reason"])
	assert.NotEqual(t, t1, obj(t, fs2.Status["temperature:0"])["tC"], "readings drift between wakes")
	expectSleep(t, c2)
	require.Eventually(t, func() bool { return d.Component().Stats().Sleeps == 2 }, waitTimeout, time.Millisecond,
		"a sleep is counted, not a failure")
	assert.Nil(t, d.Component().LastError())
}

// TestSleepSetConfigNextWake: a Ws.SetConfig made in one wake is used at
// the next, without a reboot.
func TestSleepSetConfigNextWake(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv2 := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/ws"))
	startSleeper(t, device.Options{Store: enabledStore(srv.URL())})
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	res := call(t, c, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": srv2.URL(), "ssl_ca": "*"}})
	assert.Equal(t, map[string]any{"restart_required": true}, res)
	c.ExpectStatusT(t)
	assert.Equal(t, "config_changed", c.ExpectEventT(t).Events[0].Event)
	expectSleep(t, c)
	c2 := srv2.AcceptT(t)
	fs := c2.ExpectFullStatusT(t)
	assert.Equal(t, false, obj(t, fs.Status["sys"])["restart_required"], "every wake is a boot")
	assert.Equal(t, 1, srv.Handshakes())
}

// TestSleepRebootKeepsAwake: a delayed Shelly.Reboot longer than the idle
// time keeps the wake up until it fires; the wake ends without a sleep
// event and the device is back after its boot time.
func TestSleepRebootKeepsAwake(t *testing.T) {
	srv := shellywstest.NewServer(t)
	startSleeper(t, device.Options{Store: enabledStore(srv.URL()), BootTime: 100 * time.Millisecond, WakeupPeriod: time.Hour})
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	var res json.RawMessage
	start := time.Now()
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 400}, &res)
	assert.Equal(t, "null", string(res))
	waitDone(t, c, "the wake's connection")
	assert.GreaterOrEqual(t, time.Since(start), 390*time.Millisecond, "awake until the reboot fired, past the 100 ms idle time")
	assert.NotEqual(t, websocket.StatusNormalClosure, websocket.CloseStatus(c.Err()), "a reboot is not a sleep")
	c2 := srv.AcceptT(t)
	fs := c2.ExpectFullStatusT(t)
	sys := obj(t, fs.Status["sys"])
	assert.Equal(t, map[string]any{"boot": "software_restart", "cause": "undefined"}, sys["wakeup_reason"])
	assert.EqualValues(t, 3, sys["reset_reason"])
}

// TestSleepClockSet: the clock is set a while into the wake.
func TestSleepClockSet(t *testing.T) {
	srv := shellywstest.NewServer(t)
	d := startSleeper(t, device.Options{Store: enabledStore(srv.URL()), ClockSync: 20 * time.Millisecond, AwakeIdle: 5 * time.Second, WakeupPeriod: time.Hour})
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	require.Eventually(t, d.Component().ClockSet, waitTimeout, 5*time.Millisecond)
	sys := call(t, c, "Sys.GetStatus", nil)
	assert.NotNil(t, sys["unixtime"])
	assert.InDelta(t, float64(time.Now().Unix()), sys["unixtime"], 5)
}

// TestSleepingDevicesHoldNoGoroutine: a sleeping device holds a timer, not
// a goroutine, and hundreds of wakes leave none behind.
func TestSleepingDevicesHoldNoGoroutine(t *testing.T) {
	p, err := profile.Builtin("plusht-gen2")
	require.NoError(t, err)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var devs []*device.Device
	for i := range 200 {
		d, err := device.New(device.Options{Model: p, ID: p.ID(device.DeriveMAC("0a1b2c000000", i)), FirstWake: time.Hour})
		require.NoError(t, err)
		require.NoError(t, d.Start(ctx))
		devs = append(devs, d)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine()-before, 2, "200 sleeping devices")
	cancel()
	for _, d := range devs {
		d.Wait()
		assert.Equal(t, shellyws.StateAsleep, d.State())
	}

	// A hundred short wakes against a server, each ending with its sleep
	// event and close; TestMain's goleak checks that none left anything.
	srv := shellywstest.NewServer(t)
	d := startSleeper(t, device.Options{Store: enabledStore(srv.URL()), WakeupPeriod: time.Millisecond, AwakeIdle: time.Millisecond})
	for range 100 {
		c := srv.AcceptT(t)
		c.ExpectFullStatusT(t)
		expectSleep(t, c)
	}
	require.Eventually(t, func() bool { return d.Component().Stats().Sleeps >= 100 }, waitTimeout, time.Millisecond)
	assert.Nil(t, d.Component().LastError())
}
