package main

import (
	"runtime/debug"
)

// Fleet GC defaults. A fleet's live heap is mostly idle connections; at
// Go's default GOGC=100 the heap may grow to twice that before a
// collection, which for 100,000 devices is gigabytes of headroom. An idle
// fleet allocates little, so a tighter target costs little CPU.
const (
	// fleetThreshold is the -devices count above which fleetGOGC applies.
	fleetThreshold = 1000
	// fleetGOGC is the GC target percentage of a fleet: the heap may grow
	// by a quarter of the live heap before the next collection.
	fleetGOGC = 25
)

// applyGCDefaults sets GOGC to fleetGOGC for more than fleetThreshold
// devices unless GOGC or GOMEMLIMIT is in the environment: whoever set
// those chose for themselves (the runtime applies them as usual). It
// returns what it did, for the start-up line, or "".
func applyGCDefaults(devices int, getenv func(string) string) string {
	if devices <= fleetThreshold || getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return ""
	}
	debug.SetGCPercent(fleetGOGC)
	return "GOGC=25 for a fleet (set GOGC or GOMEMLIMIT to choose)"
}
