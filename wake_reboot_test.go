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

// Component.Reboot on a sleeping device: it ends the wake under way as a
// power cycle does (no sleep event, no close frame), and the next Wake is
// the boot: its Handler answers again instead of "Rebooting" for ever.
func TestWakeComponentReboot(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(20*time.Millisecond), shellyws.WithAwakeMax(3*time.Second))
	base := serveInbound(t, c)
	release := c.HoldAwake()
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	ha := dialInbound(t, base)
	_, err := ha.call(testCtx(t), "Ws.GetStatus", nil)
	require.NoError(t, err)

	c.Reboot()
	res := awaitWake(t, out)
	release()
	assert.Equal(t, shellyws.WakeInterrupted, res.End)
	assert.False(t, res.SleepSent)
	assert.Equal(t, websocket.StatusCode(-1), closedWith(t, conn), "a reboot sends no close frame")
	_, err = conn.Next(testCtx(t))
	assert.ErrorIs(t, err, shellywstest.ErrConnClosed, "no sleep event before a reboot")
	assert.Equal(t, websocket.StatusCode(-1), ha.closeCode(testCtx(t)), "inbound clients dropped")
	assert.ErrorIs(t, c.LastError(), shellyws.ErrRebooted)

	release = c.HoldAwake()
	out = startWake(t, c)
	conn = srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	status, body := httpGet(t, base, "/rpc/Ws.GetStatus")
	assert.Equal(t, http.StatusOK, status, body)
	release()
	expectSleepEvent(t, conn)
	assert.Equal(t, shellyws.WakeIdle, awaitWake(t, out).End)
}

// A Reboot between two wakes (the device asleep) is over at the next wake.
func TestWakeAfterRebootWhileAsleep(t *testing.T) {
	c := newSleeper(t, shellyws.DefaultConfig(), shellyws.WithAwakeIdle(20*time.Millisecond))
	base := serveInbound(t, c)
	awaitWake(t, startWake(t, c))
	c.Reboot()
	release := c.HoldAwake()
	out := startWake(t, c)
	waitFor(t, "the device awake", func() bool { return c.State() != shellyws.StateAsleep })
	status, body := httpGet(t, base, "/rpc/Ws.GetStatus")
	assert.Equal(t, http.StatusOK, status, body)
	release()
	awaitWake(t, out)
}

// A websocket client that connected before the first wake is closed when
// that wake ends, like the wake's own clients: nothing runs while asleep.
func TestWakeEndsInboundClientsFromBeforeTheFirstWake(t *testing.T) {
	c := newSleeper(t, shellyws.DefaultConfig(), shellyws.WithAwakeIdle(20*time.Millisecond))
	base := serveInbound(t, c)
	early := dialInbound(t, base)
	_, err := early.call(testCtx(t), "Ws.GetStatus", nil)
	require.NoError(t, err)
	assert.Equal(t, shellyws.WakeIdle, awaitWake(t, startWake(t, c)).End)
	assert.Equal(t, websocket.StatusNormalClosure, early.closeCode(testCtx(t)))
}
