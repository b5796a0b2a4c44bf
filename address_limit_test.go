package shellyws_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// addressLimiter plays Fleet Manager's stock limits on one source address
// (protocol section 12), with every duration divided by scale: a bucket of
// 60 handshakes refilled one a second, every handshake counted in a sliding
// minute, more than 100 of them block the address for 5 minutes. An
// admission over the limit is closed with 1008, one while blocked with 1013.
type addressLimiter struct {
	scale time.Duration

	mu           sync.Mutex
	tokens       float64
	refilled     time.Time
	recent       []time.Time // handshakes in the sliding minute
	blockedUntil time.Time
	blocks       int
}

func newAddressLimiter(scale time.Duration) *addressLimiter {
	return &addressLimiter{scale: scale, tokens: 60, refilled: time.Now()}
}

func (l *addressLimiter) admit(now time.Time) (websocket.StatusCode, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	minute := time.Minute / l.scale
	l.tokens = min(60, l.tokens+float64(now.Sub(l.refilled))/float64(time.Second/l.scale))
	l.refilled = now
	kept := l.recent[:0]
	for _, t := range l.recent {
		if now.Sub(t) < minute {
			kept = append(kept, t)
		}
	}
	l.recent = append(kept, now)
	switch {
	case now.Before(l.blockedUntil):
		return websocket.StatusTryAgainLater, false
	case len(l.recent) > 100:
		l.blockedUntil = now.Add(5 * time.Minute / l.scale)
		l.blocks++
		return websocket.StatusPolicyViolation, false
	case l.tokens < 1:
		return websocket.StatusPolicyViolation, false
	}
	l.tokens--
	return 0, true
}

func (l *addressLimiter) blockCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocks
}

// runBehindOneAddress starts n devices at once against a server with the
// limiter, all from 127.0.0.1, with the backoffs scaled like the limiter,
// and returns them.
func runBehindOneAddress(t *testing.T, n int, lim *addressLimiter, serverBackoff func(time.Duration) time.Duration) []*shellyws.Component {
	t.Helper()
	stop := make(chan struct{})
	url := rawWebsocketServer(t, func(c *websocket.Conn, r *http.Request) {
		if code, ok := lim.admit(time.Now()); !ok {
			c.Close(code, "rate limited")
			return
		}
		go func() {
			<-stop
			c.CloseNow()
		}()
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { close(stop) })
	devices := make([]*shellyws.Component, n)
	for i := range devices {
		c, err := shellyws.New(fmt.Sprintf("shellyplus1pm-%012x", i),
			shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(url))),
			shellyws.WithBackoff(shellyws.ExponentialBackoff(time.Second/lim.scale, time.Minute/lim.scale)),
			shellyws.WithServerBackoff(serverBackoff))
		require.NoError(t, err)
		devices[i] = c
	}
	for _, c := range devices {
		runDevice(t, c)
	}
	return devices
}

// 100 devices behind one address against Fleet Manager's stock limits all
// get in when a close with 1008 or 1013 makes them wait 60–120 s (here a
// thirtieth of it, so that the first burst of handshakes, slow under -race,
// still fits well inside the limiter's minute); with the normal back-off
// alone their retries get the address blocked.
func TestDevicesBehindOneAddressAllGetIn(t *testing.T) {
	const scale = 30
	lim := newAddressLimiter(scale)
	devices := runBehindOneAddress(t, 100, lim, func(retryAfter time.Duration) time.Duration {
		return shellyws.DefaultServerBackoff(retryAfter) / scale
	})
	ctx := testCtx(t)
	for i, c := range devices {
		require.NoError(t, c.AwaitConnected(ctx), "device %d", i)
	}
	assert.Zero(t, lim.blockCount(), "the address was blocked")
}

func TestNormalBackoffAloneGetsTheAddressBlocked(t *testing.T) {
	const scale = 30
	lim := newAddressLimiter(scale)
	runBehindOneAddress(t, 100, lim, func(time.Duration) time.Duration {
		return time.Second / scale // what a device without section 12 waits first (DefaultBackoff's 1 s)
	})
	require.Eventually(t, func() bool { return lim.blockCount() > 0 }, waitTimeout, time.Millisecond,
		"retries within the minute block the address")
}
