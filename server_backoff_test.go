package shellyws_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// Protocol section 12: a close with 1008 or 1013, or a handshake refused
// with 429 or 503, asks for the server's longer back-off, with the
// Retry-After of a refused handshake; other failures keep the normal
// backoff.
func TestServerRequestedBackoff(t *testing.T) {
	srv := shellywstest.NewServer(t)
	rb := newRecordingBackoff(time.Millisecond, 20*time.Millisecond)
	sb := &serverBackoffRecorder{}
	startDevice(t, enabledConfig(srv.URL()), rb.option(), sb.option())
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	steps := []struct {
		name       string
		fail       func()
		serverWait []time.Duration // what the server policy is asked, if anything
		normal     int             // delays asked of the normal policy
	}{
		{"close 1013", func() { require.NoError(t, conn.Close(websocket.StatusTryAgainLater, "busy")) }, []time.Duration{0}, 0},
		{"close 1008", func() { require.NoError(t, conn.Close(websocket.StatusPolicyViolation, "limit")) }, []time.Duration{0}, 0},
		{"close 1011", func() { require.NoError(t, conn.Close(websocket.StatusInternalError, "oops")) }, []time.Duration{}, 1},
		{"refused 429", func() {
			srv.RejectNext(1, http.StatusTooManyRequests)
			require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
		}, []time.Duration{0}, 1},
		{"refused 503 with Retry-After", func() {
			srv.RejectNextWithHeader(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}})
			require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
		}, []time.Duration{7 * time.Second}, 1},
		{"refused 503 with a Retry-After beyond 300 s", func() {
			srv.RejectNextWithHeader(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"86400"}})
			require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
		}, []time.Duration{300 * time.Second}, 1},
		{"refused 503 with a date", func() {
			srv.RejectNextWithHeader(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}})
			require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
		}, []time.Duration{0}, 1},
		{"refused 500", func() {
			srv.RejectNext(1, http.StatusInternalServerError)
			require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
		}, []time.Duration{}, 2},
	}
	for _, step := range steps {
		beforeServer := len(sb.snapshot())
		beforeNormal, _ := rb.snapshot()
		step.fail()
		conn = acceptConnected(t, ctx, srv)
		after := sb.snapshot()[beforeServer:]
		afterNormal, _ := rb.snapshot()
		assert.Equal(t, step.serverWait, after, step.name)
		// A refusal follows a close 1011, which asks the normal policy.
		assert.Equal(t, step.normal, len(afterNormal)-len(beforeNormal), "%s: delays of the normal policy", step.name)
	}
}

// DefaultServerBackoff follows section 12: 60-120 s without Retry-After,
// else Retry-After (capped at 300 s) plus up to 20 %.
func TestDefaultServerBackoff(t *testing.T) {
	spread := map[bool]int{}
	for range 2000 {
		d := shellyws.DefaultServerBackoff(0)
		require.GreaterOrEqual(t, d, 60*time.Second)
		require.LessOrEqual(t, d, 120*time.Second)
		spread[d < 90*time.Second]++
	}
	assert.Positive(t, spread[true], "randomized over the whole minute")
	assert.Positive(t, spread[false], "randomized over the whole minute")
	for range 2000 {
		d := shellyws.DefaultServerBackoff(10 * time.Second)
		require.GreaterOrEqual(t, d, 10*time.Second)
		require.LessOrEqual(t, d, 12*time.Second)
		d = shellyws.DefaultServerBackoff(time.Hour)
		require.GreaterOrEqual(t, d, 300*time.Second)
		require.LessOrEqual(t, d, 360*time.Second)
	}
}
