//go:build unix

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// TestMixedFleetProfiles runs -profile a,b,c -devices 30: device i plays
// profile i mod 3 with the MAC of -id plus i, so 30 distinct ids with each
// model's prefix and id style connect, each with its model's status.
func TestMixedFleetProfiles(t *testing.T) {
	names := []string{"plus1pm-gen2", "pro3em-gen2", "walldisplay-gen2"}
	const n, baseMAC = 30, "c0ffee0000f0"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-devices", "30", "-id", "shellyplus1pm-"+baseMAC,
		"-profile", strings.Join(names, ","))
	want := map[string]string{} // id -> profile
	for i := range n {
		pr, err := profile.Builtin(names[i%len(names)])
		require.NoError(t, err)
		want[pr.ID(device.DeriveMAC(baseMAC, i))] = pr.Name
	}
	require.Len(t, want, n)
	seen := map[string]bool{}
	for range n {
		c := srv.AcceptT(t)
		fs := c.ExpectFullStatusT(t)
		name, ok := want[c.Src()]
		require.True(t, ok, "unexpected id %s", c.Src())
		require.False(t, seen[c.Src()], "%s twice", c.Src())
		seen[c.Src()] = true
		var sys struct {
			MAC string `json:"mac"`
		}
		require.NoError(t, json.Unmarshal(fs.Status["sys"], &sys))
		assert.Equal(t, strings.ToUpper(c.Src()[len(c.Src())-12:]), sys.MAC)
		switch name {
		case "pro3em-gen2":
			assert.True(t, strings.HasPrefix(c.Src(), "shellypro3em-"), c.Src())
			assert.Contains(t, fs.Status, "em:0")
		case "walldisplay-gen2":
			assert.Regexp(t, `^ShellyWallDisplay-[0-9A-F]{12}$`, c.Src())
			assert.Contains(t, fs.Status, "thermostat:0")
		default:
			assert.True(t, strings.HasPrefix(c.Src(), "shellyplus1pm-"), c.Src())
			assert.Contains(t, fs.Status, "switch:0")
		}
		var info device.DeviceInfo
		c.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
		assert.Equal(t, c.Src(), info.ID, "device info id equals src (Fleet Manager's identity check)")
	}
	assert.Len(t, seen, n)
	p.stop(t)
}

// TestSimInputOnlyInbound presses a button through Sim.Input on the -http
// channel (HTTP and its websocket): the outbound server gets input:N's
// NotifyEvent; the outbound connection itself cannot call Sim.Input, and no method list shows it.
func TestSimInputOnlyInbound(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-profile", "plusi4-gen2", "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)

	r := httpDo(t, http.MethodGet, base+"/rpc/Sim.Input?id=1&event=single_push", "")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "null", r.body)
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "input:1", ev.Events[0].Component)
	require.NotNil(t, ev.Events[0].ID)
	assert.Equal(t, 1, *ev.Events[0].ID)
	assert.Equal(t, "single_push", ev.Events[0].Event)

	r = httpDo(t, http.MethodPost, base+"/rpc", `{"id":5,"src":"lab","method":"sim.input","params":{"id":3,"event":"long_push"}}`)
	assert.JSONEq(t, `{"id":5,"src":"`+c.Src()+`","dst":"lab","result":null}`, r.body)
	ev = c.ExpectEventT(t)
	assert.Equal(t, "input:3", ev.Events[0].Component)
	assert.Equal(t, "long_push", ev.Events[0].Event)

	r = httpDo(t, http.MethodPost, base+"/rpc/Sim.Input", `{"id":0,"event":"tap"}`)
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.Contains(t, r.body, `"code":-103`)
	assert.Contains(t, r.body, "is not one of single_push, double_push, long_push, btn_down, btn_up")

	// The outbound channel: no such method.
	err := c.Call(testCtx(t), "Sim.Input", map[string]any{"id": 0, "event": "single_push"}, nil)
	var e *shellyws.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, shellyws.CodeNoHandler, e.Code)
	assert.Equal(t, "No handler for Sim.Input", e.Message)

	// A client of the inbound websocket /rpc (the same -http channel) may.
	ctx := testCtx(t)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/rpc", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": 1, "src": "cli", "method": "Sim.Input",
		"params": map[string]any{"id": 0, "event": "single_push"}}))
	var resp struct {
		ID     *int            `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *shellyws.Error `json:"error"`
	}
	// The client also gets the device's notifications, the input's event
	// among them, which may come before the answer.
	for resp.ID == nil {
		require.NoError(t, wsjson.Read(ctx, ws, &resp))
	}
	require.Nil(t, resp.Error)
	assert.JSONEq(t, "null", string(resp.Result))
	ev = c.ExpectEventT(t)
	assert.Equal(t, "input:0", ev.Events[0].Component)
	assert.Equal(t, "single_push", ev.Events[0].Event)

	for _, list := range []string{
		httpDo(t, http.MethodGet, base+"/rpc/Shelly.ListMethods", "").body,
	} {
		assert.NotContains(t, strings.ToLower(list), "sim.")
		assert.Contains(t, list, "Input.GetStatus")
	}
	var methods struct {
		Methods []string `json:"methods"`
	}
	c.CallT(t, "Shelly.ListMethods", nil, &methods)
	assert.NotContains(t, methods.Methods, "Sim.Input")
	p.stop(t)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
