package shellywstest

import (
	"context"
	"testing"
	"time"
)

// Runner is a device that runs until its context ends: a
// *shellyws.Component, or a *device.Device of the device kit.
type Runner interface {
	Run(ctx context.Context) error
}

// StartDevice runs r on a goroutine until the test ends; the cleanup
// cancels it and waits (at most DefaultTimeout) for Run to return, so a
// goroutine leak check sees nothing of it. A Run that returns an error
// fails the test.
func StartDevice(t testing.TB, r Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shellywstest: Run returned %v", err)
			}
		case <-time.After(DefaultTimeout):
			t.Errorf("shellywstest: Run did not return %v after its context ended", DefaultTimeout)
		}
	})
}
