package device

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// runBare runs a device of a one-relay model with the clock at now, no
// server, until the test ends.
func runBare(t *testing.T, now time.Time) *Device {
	t.Helper()
	m, err := NewModel(Info{Model: "X", App: "X", IDPrefix: "shellyx"}, SwitchSpec{ID: 0})
	require.NoError(t, err)
	d, err := New(Options{Model: m, Now: func() time.Time { return now }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	require.Eventually(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.running
	}, 10*time.Second, time.Millisecond)
	return d
}

func rpc(t *testing.T, d *Device, method string, params any) {
	t.Helper()
	raw, err := json.Marshal(params)
	require.NoError(t, err)
	_, err = d.Dispatch(context.Background(), &shellyws.Request{Method: method, Params: raw})
	require.NoError(t, err, method)
}

// armed returns when the device's schedule timer is due, zero without one.
func armed(d *Device) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.schedules == nil || d.schedules.timer == nil {
		return time.Time{}
	}
	return d.schedules.planned
}

// TestScheduleTimerDiscipline: one timer at most, armed only while the
// device runs and has an enabled job, for the next run in the device's
// time zone, re-armed when sys.location changes, at a reboot, and stopped
// when Run ends.
func TestScheduleTimerDiscipline(t *testing.T) {
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC) // a Friday
	d := runBare(t, now)
	d.mu.Lock()
	assert.Nil(t, d.schedules, "an idle device holds nothing")
	d.mu.Unlock()

	call := []map[string]any{{"method": "Switch.Set", "params": map[string]any{"id": 0, "on": true}}}
	rpc(t, d, "Schedule.Create", map[string]any{"enable": false, "timespec": "0 0 22 * * FRI", "calls": call})
	assert.True(t, armed(d).IsZero(), "no enabled job, no timer")
	rpc(t, d, "Schedule.Update", map[string]any{"id": 1, "enable": true})
	assert.Equal(t, time.Date(2025, 3, 14, 22, 0, 0, 0, time.UTC), armed(d).UTC(), "no location: UTC")
	d.mu.Lock()
	assert.True(t, d.schedules.capped, "a far run: the timer looks at the clock again within maxArm")
	d.mu.Unlock()

	rpc(t, d, "Sys.SetConfig", map[string]any{"config": map[string]any{"location": map[string]any{"tz": "Europe/Rome", "lat": 41.9028, "lon": 12.4964}}})
	assert.Equal(t, time.Date(2025, 3, 14, 21, 0, 0, 0, time.UTC), armed(d).UTC(), "22:00 in Rome")
	rpc(t, d, "Sys.SetConfig", map[string]any{"config": map[string]any{"location": map[string]any{"tz": "America/New_York"}}})
	assert.Equal(t, time.Date(2025, 3, 15, 2, 0, 0, 0, time.UTC), armed(d).UTC(), "22:00 in New York")

	// The coordinates are kept from the first change: Rome's sunset, the
	// calendar day of New York.
	rpc(t, d, "Schedule.Create", map[string]any{"timespec": "@sunset", "calls": call})
	assert.WithinDuration(t, time.Date(2025, 3, 14, 17, 15, 30, 0, time.UTC), armed(d), time.Minute)

	rpc(t, d, "Schedule.Update", map[string]any{"id": 1, "enable": false})
	rpc(t, d, "Sys.SetConfig", map[string]any{"config": map[string]any{"location": nil}})
	assert.True(t, armed(d).IsZero(), "@sunset without coordinates never runs")

	rpc(t, d, "Schedule.Update", map[string]any{"id": 1, "enable": true})
	require.False(t, armed(d).IsZero())
	d.Boot()
	assert.False(t, armed(d).IsZero(), "re-armed at a reboot")
	rpc(t, d, "Schedule.DeleteAll", nil)
	assert.True(t, armed(d).IsZero(), "no job, no timer")
}

// TestScheduleTimerStopsWithRun: Run ends with no schedule timer left.
func TestScheduleTimerStopsWithRun(t *testing.T) {
	m, err := NewModel(Info{Model: "X", App: "X", IDPrefix: "shellyx"}, SwitchSpec{ID: 0})
	require.NoError(t, err)
	d, err := New(Options{Model: m})
	require.NoError(t, err)
	rpc(t, d, "Schedule.Create", map[string]any{"timespec": "*/1 * * * * *", "calls": []map[string]any{{"method": "Switch.Toggle", "params": map[string]any{"id": 0}}}})
	assert.True(t, armed(d).IsZero(), "not before Run")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	require.Eventually(t, func() bool { return !armed(d).IsZero() }, 10*time.Second, time.Millisecond, "armed when Run starts")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	assert.True(t, armed(d).IsZero(), "stopped when Run ends")
}
