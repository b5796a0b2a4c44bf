package shellyws

import "time"

// The component's clocks: mono for intervals (keepalive, idle times,
// uptime), opts.clock (WithClock's, set by New) for what must not restart
// at a wake (nonces, lockouts, a connection's healthy time).
// Timestamps ("ts") use opts.now, which WithBootClock wraps
// (wake.go).

// monoBase anchors mono: time.Since reads the monotonic clock.
var monoBase = time.Now()

// mono is the process's monotonic time in nanoseconds, cheap to store in an
// atomic.Int64.
func mono() int64 { return int64(time.Since(monoBase)) }
