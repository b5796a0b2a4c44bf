package shellywstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shellyws/shellyws"
)

// FastBackoff returns an option that makes a device under test reconnect
// within milliseconds: its backoff starts at 1 ms and is capped at 20 ms,
// and a server's request for a longer back-off (a handshake refused with
// 429 or 503, a close 1008 or 1013 of a young connection) is honoured
// after 1 ms instead of a minute or more.
func FastBackoff() shellyws.Option {
	return both(
		shellyws.WithBackoff(shellyws.ExponentialBackoff(time.Millisecond, 20*time.Millisecond)),
		shellyws.WithServerBackoff(func(time.Duration) time.Duration { return time.Millisecond }),
	)
}

// both makes one option of two: an Option's argument type is not exported.
func both[O ~func(P), P any](a, b O) O {
	return func(p P) {
		a(p)
		b(p)
	}
}

// StartComponent runs c.Run on a goroutine of its own until the test ends:
// at cleanup it cancels Run's context and waits for Run to return, failing
// the test if that takes longer than DefaultTimeout. It does not wait for
// the device to connect; see RunComponent.
func StartComponent(t testing.TB, c *shellyws.Component) {
	t.Helper()
	StartDevice(t, c)
}

// RunComponent is StartComponent followed by a wait, bounded by
// DefaultTimeout, until c is connected; it fails the test if c does not
// connect, with c's LastError. Call it from the test's goroutine.
//
// The device is connected (State reports StateConnected) once its
// NotifyFullStatus is written; the server may read that frame an instant
// before, so a test that has read the full status and needs the device's
// own view waits with Component.AwaitConnected, as this does. Requests the
// server sends after the full status need no wait: the device reads
// nothing before it is connected.
func RunComponent(t testing.TB, c *shellyws.Component) {
	t.Helper()
	StartComponent(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if err := c.AwaitConnected(ctx); err != nil {
		t.Fatalf("shellywstest: device %s did not connect: %v (last error: %v)", c.ID(), err, c.LastError())
	}
}

// NextMethod returns the next frame whose method is method (compared
// without regard to case, as devices do), skipping notifications of other
// methods that come before it, such as a NotifyStatus interleaved with the
// NotifyEvent a test waits for. Any other frame in between (a response
// nobody waits for, a request, a malformed message) is consumed and
// returned inside an *UnexpectedFrameError.
func (c *Conn) NextMethod(ctx context.Context, method string) (Frame, error) {
	for {
		f, err := c.Next(ctx)
		if err != nil {
			return f, err
		}
		if strings.EqualFold(f.Method, method) {
			return f, nil
		}
		if !f.IsNotification() {
			return f, &UnexpectedFrameError{Want: method, Problem: describe(f), Frame: f}
		}
	}
}

// NextMethodT is NextMethod bounded by DefaultTimeout; it fails the test on
// error.
func (c *Conn) NextMethodT(t testing.TB, method string) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	f, err := c.NextMethod(ctx, method)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
