package shellyws

import (
	"context"
	"sync"
)

// State is where the component's outbound connection is.
type State int32

// The states, in the order a connection goes through them. StateClosed is
// terminal: Run has returned. StateAsleep is where a sleeping device is
// between two calls of Wake (see Wake): not a failure, and not terminal.
const (
	StateDisconnected State = iota
	StateConnecting
	StateConnected
	StateClosed
	StateAsleep
)

// String returns the state's name in lower case.
func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	case StateAsleep:
		return "asleep"
	}
	return "unknown"
}

// Status is the component's status, shaped like the JSON of Ws.GetStatus.
type Status struct {
	Connected bool `json:"connected"`
}

// Stats are counters of a component, for monitoring and tests.
type Stats struct {
	// Connects counts connections that came up; Disconnects counts those
	// that ended, the one closed at shutdown included; DialFailures counts
	// attempts that never came up.
	Connects, Disconnects, DialFailures uint64
	// Queued is how many notifications wait for the connection now.
	Queued int
	// Dropped counts notifications dropped because the queue was full;
	// not one lost with a connection after it was written (see
	// NotifyStatus).
	Dropped uint64
	// Wakes counts calls of Wake that started a wake; Sleeps counts
	// those that ended by falling asleep (idle time or cap), with the
	// sleep event sent if the outbound connection was up.
	Wakes, Sleeps uint64
}

// Stats returns the component's counters.
func (c *Component) Stats() Stats {
	queued, dropped := c.queue.stats()
	return Stats{
		Connects:     c.connects.Load(),
		Disconnects:  c.disconnects.Load(),
		DialFailures: c.dialFailures.Load(),
		Queued:       queued,
		Dropped:      dropped,
		Wakes:        c.wake.wakes.Load(),
		Sleeps:       c.wake.sleeps.Load(),
	}
}

// stateBox holds the state and wakes waiters on every change; waiters take
// the current channel under the lock, so no change can be missed. The
// channel is made for the first waiter only: a fleet's devices, which no
// one waits on, hold none.
type stateBox struct {
	mu      sync.Mutex
	state   State
	lastErr error
	changed chan struct{} // nil while no one waits
}

func newStateBox() *stateBox { return &stateBox{} }

func (b *stateBox) get() (State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.lastErr
}

// set moves to s; a non-nil err becomes the last error.
func (b *stateBox) set(s State, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.lastErr = err
	}
	if b.state == s || b.state == StateClosed {
		return
	}
	b.state = s
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

func (b *stateBox) snapshot() (State, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.state, b.changed
}

// State returns the connection's current state.
func (c *Component) State() State {
	s, _ := c.state.get()
	return s
}

// LastError returns the most recent connection error (a failed dial, a
// dropped connection), or nil if there was none. Server URLs in it are
// redacted.
func (c *Component) LastError() error {
	_, err := c.state.get()
	return err
}

// GetStatus returns the component's status, as Ws.GetStatus answers it.
func (c *Component) GetStatus() Status {
	return Status{Connected: c.State() == StateConnected}
}

// WaitForStateChange blocks until the state differs from from, and returns
// the new state. It returns ctx's error if ctx ends first.
func (c *Component) WaitForStateChange(ctx context.Context, from State) (State, error) {
	for {
		s, changed := c.state.snapshot()
		if s != from {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// AwaitConnected blocks until the component is connected (its
// NotifyFullStatus sent) and returns nil, or returns ctx's error, or
// ErrClosed once Run has returned.
//
// The component becomes connected as soon as the write of its
// NotifyFullStatus returns, and reads no request before that: a server
// that has read the full status may send requests at once and they see
// the device connected, but a test on the device's side that has seen the
// server read the full status calls AwaitConnected before it checks State,
// which may still say connecting for an instant.
func (c *Component) AwaitConnected(ctx context.Context) error {
	for {
		s, changed := c.state.snapshot()
		switch s {
		case StateConnected:
			return nil
		case StateClosed:
			return ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
