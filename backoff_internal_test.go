package shellyws

import (
	"testing"
	"time"
)

// A policy that would give up (a negative wait) waits the cap instead: a
// device never gives up.
func TestNextDelayNeverGivesUp(t *testing.T) {
	c, err := New("shellyplus1pm-c049ef8cf4e0", WithBackoff(func(attempt int) time.Duration {
		if attempt > 2 {
			return -1
		}
		return time.Duration(attempt) * time.Millisecond
	}))
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range map[int]time.Duration{1: time.Millisecond, 2: 2 * time.Millisecond, 3: time.Minute, 1000: time.Minute} {
		if got := c.nextDelay(attempt); got != want {
			t.Errorf("attempt %d: waits %v, want %v", attempt, got, want)
		}
	}
}
