package shellyws_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/shellyws/shellyws"
)

// An HTTP request still running when the wake ends sees its context end,
// as a websocket client's request does: nothing of the device runs while
// it sleeps.
func TestWakeEndCancelsHTTPRequests(t *testing.T) {
	c := newSleeper(t, shellyws.DefaultConfig(),
		shellyws.WithAwakeIdle(20*time.Millisecond), shellyws.WithAwakeMax(300*time.Millisecond))
	base := serveInbound(t, c)
	release := c.HoldAwake()
	out := startWake(t, c)
	waitFor(t, "the device awake", func() bool { return c.State() != shellyws.StateAsleep })
	release()
	// 30 s: far past the cap, and past waitTimeout, so only the end of
	// the wake can answer it in time.
	status, body := httpGet(t, base, "/rpc/Test.Slow?ms=30000")
	assert.Equal(t, shellyws.WakeCapped, awaitWake(t, out).End)
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, body, "context canceled")
}
