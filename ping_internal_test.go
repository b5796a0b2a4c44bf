package shellyws

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPingDelay(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		iv, after, want time.Duration
	}{
		// 30 s: a grain of 100 ms, so at most 100 ms later, on the grain.
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 1 * time.Millisecond, 30*time.Second + 99*time.Millisecond},
		{30 * time.Second, 99 * time.Millisecond, 30*time.Second + 1*time.Millisecond},
		{30 * time.Second, 100 * time.Millisecond, 30 * time.Second},
		// 2.56 s: a grain of 10 ms.
		{2560 * time.Millisecond, 3 * time.Millisecond, 2560*time.Millisecond + 7*time.Millisecond},
		// Test intervals stay as given to within 1/256 (-1: checked below).
		{50 * time.Millisecond, 100 * time.Microsecond, -1},
		{255 * time.Nanosecond, 7, 255 * time.Nanosecond},
	} {
		now := base.Add(tc.after)
		got := pingDelay(tc.iv, now)
		if tc.want >= 0 {
			assert.Equal(t, tc.want, got, "interval %v at +%v", tc.iv, tc.after)
		}
		if g := int64(min(tc.iv/256, maxPingGrain)); g > 0 {
			assert.Zero(t, now.Add(got).UnixNano()%g, "interval %v at +%v: on the grain", tc.iv, tc.after)
		}
		assert.GreaterOrEqual(t, got, tc.iv)
		assert.LessOrEqual(t, got, tc.iv+min(tc.iv/256, maxPingGrain))
	}
}
