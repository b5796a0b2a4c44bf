package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFleetGC(t *testing.T) {
	for _, tc := range []struct{ n, unsettled, want int }{
		{10000, 0, fleetGOGC},
		{10000, 99, fleetGOGC},
		{10000, 100, dialingGOGC},
		{10000, 10000, dialingGOGC},
		{1001, 9, fleetGOGC},
		{1001, 10, dialingGOGC},
		{50, 0, fleetGOGC},
		{50, 1, dialingGOGC},
	} {
		require.Equal(t, tc.want, fleetGCPercent(tc.n, tc.unsettled), "%d of %d unsettled", tc.unsettled, tc.n)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		devices int
		env     map[string]string
		adapt   bool
	}{
		{1000, nil, false},
		{1001, nil, true},
		{100000, map[string]string{"GOGC": "50"}, false},
		{100000, map[string]string{"GOMEMLIMIT": "1GiB"}, true},
	} {
		prev := debug.SetGCPercent(100)
		_, adapt := applyGCDefaults(tc.devices, env(tc.env))
		debug.SetGCPercent(prev)
		require.Equal(t, tc.adapt, adapt, "%d devices, %v", tc.devices, tc.env)
	}
}

// TestFleetGCCountsOnlyAfterDialsOrCloses steps the watcher: it settles
// after settledTicks settled counts, then counts no more until a dial or a
// close, and a fleet that lost its connections gets the dialing target at
// the next tick.
func TestFleetGCCountsOnlyAfterDialsOrCloses(t *testing.T) {
	var counts, unsettled int
	var events uint64
	var set []int
	g := newFleetGC(10000, func() int { counts++; return unsettled },
		func() uint64 { return events }, func(p int) { set = append(set, p) })

	events = 10000 // the start's dials
	for range settledTicks {
		g.tick()
	}
	require.Equal(t, []int{fleetGOGC}, set, "settled")
	before := counts
	for range 10 {
		g.tick()
	}
	require.Equal(t, before, counts, "a settled fleet without dials or closes is not counted")

	events += 500 // a server restart: connections close
	unsettled = 500
	g.tick()
	require.Equal(t, before+1, counts)
	require.Equal(t, []int{fleetGOGC, dialingGOGC}, set, "dialing again")

	unsettled = 0 // all back
	for range settledTicks {
		g.tick()
	}
	require.Equal(t, []int{fleetGOGC, dialingGOGC, fleetGOGC}, set, "settled again")
}
