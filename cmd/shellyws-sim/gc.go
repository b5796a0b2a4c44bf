package main

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
)

// Fleet GC defaults. A fleet's live heap is mostly idle connections; at
// Go's default GOGC=100 the heap may grow to twice that before a
// collection, which for 100,000 devices is gigabytes of headroom. An idle
// fleet allocates little (its keepalive), so a tight target costs little
// CPU once it is connected. While many devices dial (the start, a server's
// restart) the heap churns through handshakes; a tight target then makes
// the collector run every few hundred connections and slows the dials, so
// the fleet runs with Go's default until it has settled.
const (
	// fleetThreshold is the -devices count above which the fleet GC applies.
	fleetThreshold = 1000
	// fleetGOGC is the GC target percentage of a settled fleet: the heap
	// may grow by 5 % of the live heap before the next collection. The
	// keepalive of 10,000 devices makes about 0.25 MB/s of garbage, so
	// that is a collection every half minute or so; measured at 10,000
	// devices, 5 instead of 10 saved 0.5 KiB of RSS per device and no
	// idle CPU that the benchmark could tell.
	fleetGOGC = 5
	// dialingGOGC is the target while at least dialingShare of the fleet is
	// connecting or waiting to redial.
	dialingGOGC = 100
	// dialingShare is the share of the fleet (1/dialingShare) not connected
	// that counts as dialing in numbers.
	dialingShare = 100
	// gcWatchEvery is how often the fleet's states are counted; the fleet
	// counts as settled after settledTicks counts in a row.
	gcWatchEvery = 250 * time.Millisecond
	settledTicks = 2
)

// applyGCDefaults reports whether the fleet GC applies: more than
// fleetThreshold devices and no GOGC in the environment (whoever set it
// chose for themselves). A GOMEMLIMIT is a ceiling the runtime keeps
// either way, so it does not turn the fleet GC off. If it applies, it sets
// GOGC to dialingGOGC for the start and returns the note for the start-up
// line; watchGC does the rest.
func applyGCDefaults(devices int, getenv func(string) string) (note string, adapt bool) {
	if devices <= fleetThreshold || getenv("GOGC") != "" {
		return "", false
	}
	debug.SetGCPercent(dialingGOGC)
	return "GOGC=5 for a connected fleet, 100 while it dials (set GOGC to choose)", true
}

// fleetGCPercent is the GC target for a fleet of n devices of which
// unsettled are connecting or disconnected.
func fleetGCPercent(n, unsettled int) int {
	if unsettled > 0 && unsettled >= n/dialingShare {
		return dialingGOGC
	}
	return fleetGOGC
}

// watchGC sets the GC target from the fleet's states every gcWatchEvery
// until ctx ends; see fleetGC.
func watchGC(ctx context.Context, devices []*device.Device, gate *dialGate) {
	t := time.NewTicker(gcWatchEvery)
	defer t.Stop()
	g := newFleetGC(len(devices), func() int {
		unsettled := 0
		for _, d := range devices {
			switch d.Component().State() {
			case shellyws.StateConnecting, shellyws.StateDisconnected:
				unsettled++
			}
		}
		return unsettled
	}, gate.events.Load, setFleetGC)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.tick()
		}
	}
}

// setFleetGC sets the GC target percentage. Settling, it also returns the
// dials' garbage to the system: the runtime keeps freed pages and hands
// them back only slowly.
func setFleetGC(percent int) {
	debug.SetGCPercent(percent)
	if percent == fleetGOGC {
		debug.FreeOSMemory()
	}
}

// fleetGC is watchGC's state: the target goes up at once and down after
// settledTicks settled counts in a row. A settled fleet is counted again
// only once connections closed or dials started since the last count:
// counting reads every device, which for 10,000 idle devices four times a
// second was a tenth of the process's idle CPU. Closes count so that a
// server's restart raises the target before the fleet redials.
type fleetGC struct {
	n         int
	unsettled func() int    // devices connecting or disconnected
	events    func() uint64 // dials started and connections closed so far
	set       func(percent int)

	cur, settled int
	seenEvents   uint64
}

func newFleetGC(n int, unsettled func() int, events func() uint64, set func(int)) *fleetGC {
	return &fleetGC{n: n, unsettled: unsettled, events: events, set: set, cur: dialingGOGC}
}

func (g *fleetGC) tick() {
	seen := g.seenEvents
	g.seenEvents = g.events()
	if g.cur == fleetGOGC && g.seenEvents == seen {
		return
	}
	p := fleetGCPercent(g.n, g.unsettled())
	if p == fleetGOGC {
		if g.settled++; g.settled < settledTicks {
			return
		}
	} else {
		g.settled = 0
	}
	if p != g.cur {
		g.set(p)
		g.cur = p
	}
}
