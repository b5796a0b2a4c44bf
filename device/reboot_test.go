package device_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// waitDone waits for c to end.
func waitDone(t *testing.T, c *shellywstest.Conn, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("%s stayed up", what)
	}
}

// TestRebootAnswersThenDrops: the answer is on the wire first, then the
// connection drops without a close frame (as a power cycle looks), and the
// device is back after its boot time with a fresh full status.
func TestRebootAnswersThenDrops(t *testing.T) {
	const bootTime = 200 * time.Millisecond
	d, srv, c, _ := connect(t, device.Options{BootTime: bootTime})
	sent := time.Now() // before the device can have dropped: a sound lower bound
	raw, err := c.CallRaw(testCtx(t), []byte(`{"id":7,"src":"hass","method":"Shelly.Reboot","params":{"delay_ms":0}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":7,"src":"`+testID+`","dst":"hass","result":null}`, string(raw))
	waitDone(t, c, "the connection")
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(c.Err()), "dropped, not closed: %v", c.Err())
	c2 := srv.AcceptT(t)
	assert.GreaterOrEqual(t, time.Since(sent), bootTime, "back only after the boot time")
	fs := c2.ExpectFullStatusT(t)
	sys := obj(t, fs.Status["sys"])
	assert.EqualValues(t, 0, sys["uptime"])
	assert.EqualValues(t, 3, sys["reset_reason"])
	assert.Equal(t, false, sys["restart_required"])
	require.Eventually(t, func() bool { return d.Component().State() == shellyws.StateConnected }, waitTimeout, time.Millisecond)
}

// TestRebootDropsInboundClients: a real reboot drops every TCP connection,
// the clients of the device's own websocket too (issue 10's first bug).
func TestRebootDropsInboundClients(t *testing.T) {
	d, srv, c, _ := connect(t, device.Options{BootTime: 100 * time.Millisecond})
	h := shellyws.NewHandler(d.Component())
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); h.Close() })

	ctx := testCtx(t)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"src":"hass","method":"Shelly.GetDeviceInfo"}`)))
	_, data, err := ws.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"result":`)
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"id":2,"src":"hass","method":"Shelly.Reboot","params":{"delay_ms":0}}`)))
	_, data, err = ws.Read(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":2,"src":"`+testID+`","dst":"hass","result":null}`, string(data))

	// The inbound client is dropped, not left connected.
	readCtx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	for {
		if _, _, err = ws.Read(readCtx); err != nil {
			break
		}
	}
	require.NoError(t, readCtx.Err(), "the inbound client stayed connected after the reboot")
	waitDone(t, c, "the outbound connection")
	srv.AcceptT(t).ExpectFullStatusT(t)
}

// TestRebootReplaysNothing: deltas and events published up to the drop
// are not sent after the new NotifyFullStatus (issue 10's second bug).
func TestRebootReplaysNothing(t *testing.T) {
	d, srv, c, _ := connect(t, device.Options{BootTime: 300 * time.Millisecond})
	var res json.RawMessage
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 50}, &res)

	// Changes keep coming until the device is gone; some are still queued
	// when it drops, others are made while it boots.
	var wg sync.WaitGroup
	wg.Go(func() {
		on := true
		for {
			select {
			case <-c.Done():
				for range 5 {
					d.SetSwitch(on, "button")
					on = !on
				}
				_ = d.Component().NotifyEvent(shellyws.Event{Component: "sys", Event: "config_changed"})
				return
			default:
			}
			d.SetSwitch(on, "button")
			on = !on
		}
	})
	waitDone(t, c, "the connection")
	wg.Wait()

	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
	// The first thing after the full status is the answer to this call.
	var st json.RawMessage
	c2.CallT(t, "Ws.GetConfig", nil, &st)
	assert.Contains(t, string(st), `"enable":true`)
	select {
	case <-c2.Done():
		t.Fatal("the new connection ended")
	default:
	}
	// Nothing stale reached the new connection before the answer: the
	// server's reader puts unexpected notifications in order, so the
	// next frame would show it.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	f, err := c2.Next(ctx)
	assert.Error(t, err, "a stale frame after the new full status: %s", f.Raw)
}

// TestRebootKeepsAuth: stored config and auth persist over a reboot.
func TestRebootKeepsAuth(t *testing.T) {
	auth := shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(testID, "secret"))
	_, srv, c, _ := connect(t, device.Options{BootTime: 20 * time.Millisecond, Extra: []shellyws.Option{shellyws.WithAuthStore(auth)}})
	var res json.RawMessage
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 0}, &res)
	waitDone(t, c, "the connection")
	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
	info := call(t, c2, "Shelly.GetDeviceInfo", nil)
	assert.Equal(t, true, info["auth_en"])
	assert.Equal(t, srv.URL(), call(t, c2, "Ws.GetConfig", nil)["server"])
}
