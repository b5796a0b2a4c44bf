package shellyws

import "time"

// The component's clocks: mono for intervals (keepalive, idle times,
// uptime), wallClock for what must not restart at a wake (nonces,
// lockouts). Timestamps ("ts") use opts.now, which WithBootClock wraps
// (wake.go).

// monoBase anchors mono: time.Since reads the monotonic clock.
var monoBase = time.Now()

// mono is the process's monotonic time in nanoseconds, cheap to store in an
// atomic.Int64.
func mono() int64 { return int64(time.Since(monoBase)) }

// wallClock is WithClock's clock, unlike opts.now never the boot clock of
// WithBootClock, which restarts at every wake: nonces live an hour and
// lockouts last 2 s of it.
func (c *Component) wallClock() time.Time {
	if c.opts.clock != nil {
		return c.opts.clock()
	}
	return c.opts.now()
}
