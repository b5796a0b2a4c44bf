package device_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestFullStatusHasEveryComponent(t *testing.T) {
	_, _, c, fs := connect(t, device.Options{})

	assert.Equal(t, testID, c.Src())
	assert.Equal(t, testID, fs.Src)
	assert.Equal(t, "ws", fs.Dst)
	for _, key := range []string{"sys", "wifi", "cloud", "mqtt", "ble", "ws", "switch:0", "input:0", "script:1"} {
		assert.Contains(t, fs.Status, key)
	}
	assert.JSONEq(t, `{"connected":true}`, string(fs.Status["ws"]))

	// Home Assistant's check: src.split("-")[1].upper() == sys.mac.
	sys := obj(t, fs.Status["sys"])
	assert.Equal(t, strings.ToUpper(strings.Split(c.Src(), "-")[1]), sys["mac"])
	assert.Equal(t, "0A1B2C3D4E5F", sys["mac"])
	for _, k := range []string{"restart_required", "time", "unixtime", "uptime", "ram_size", "ram_free",
		"fs_size", "fs_free", "cfg_rev", "kvs_rev", "schedule_rev", "webhook_rev", "available_updates", "reset_reason"} {
		assert.Contains(t, sys, k)
	}

	sw := obj(t, fs.Status["switch:0"])
	for _, k := range []string{"id", "source", "output", "apower", "voltage", "current", "aenergy", "temperature"} {
		assert.Contains(t, sw, k)
	}
	assert.Equal(t, false, sw["output"])
	assert.Equal(t, "WS_in", sw["source"], "the dump's state: the captured device's last change came over the websocket")
	ae := sw["aenergy"].(map[string]any)
	assert.Contains(t, ae, "total")
	assert.Len(t, ae["by_minute"], 3)
	assert.Contains(t, ae, "minute_ts")
	temp := sw["temperature"].(map[string]any)
	assert.Contains(t, temp, "tC")
	assert.Contains(t, temp, "tF")
	assert.JSONEq(t, `{"id":0,"state":false}`, string(fs.Status["input:0"]))
	assert.JSONEq(t, `{"connected":true}`, string(fs.Status["cloud"]))
}

func TestGetDeviceInfo(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})
	var raw json.RawMessage
	c.CallT(t, "Shelly.GetDeviceInfo", nil, &raw)
	// The captured Plus 1PM's answer, in its key order, with this device's
	// id and MAC.
	want := `{"app":"Plus1PM","auth_domain":null,"auth_en":false,"fw_id":"20231219-133934/1.1.0-g34b5d4f",` +
		`"gen":2,"id":"shellyplus1pm-0a1b2c3d4e5f","mac":"0A1B2C3D4E5F","model":"SNSW-001P16EU","name":"Test Name",` +
		`"slot":0,"ver":"1.1.0"}`
	assert.Equal(t, want, string(raw))
}

func TestGetStatusAndConfig(t *testing.T) {
	d, _, c, _ := connect(t, device.Options{})

	status := call(t, c, "Shelly.GetStatus", nil)
	assert.Equal(t, map[string]any{"connected": true}, status["ws"])
	assert.Equal(t, d.MAC(), status["sys"].(map[string]any)["mac"])

	cfg := call(t, c, "Shelly.GetConfig", nil)
	wantWS, _ := json.Marshal(d.Component().GetConfig())
	gotWS, _ := json.Marshal(cfg["ws"])
	assert.JSONEq(t, string(wantWS), string(gotWS))
	for _, key := range []string{"sys", "wifi", "cloud", "mqtt", "ble", "ws", "switch:0", "input:0"} {
		assert.Contains(t, cfg, key)
	}

	sys := call(t, c, "Sys.GetStatus", nil)
	assert.Equal(t, "0A1B2C3D4E5F", sys["mac"])
	assert.EqualValues(t, dumpCfgRev, sys["cfg_rev"])
	assert.Equal(t, false, sys["restart_required"])

	syscfg := call(t, c, "Sys.GetConfig", nil)
	assert.EqualValues(t, dumpCfgRev, syscfg["cfg_rev"])
	assert.Equal(t, "0A1B2C3D4E5F", syscfg["device"].(map[string]any)["mac"])
	assert.Equal(t, "20231219-133934/1.1.0-g34b5d4f", syscfg["device"].(map[string]any)["fw_id"])

	assert.Equal(t, map[string]any{"id": 0.0, "state": false}, call(t, c, "Input.GetStatus", map[string]any{"id": 0}))
	assert.Equal(t, "switch", call(t, c, "Input.GetConfig", map[string]any{"id": 0})["type"])
	assert.Equal(t, "flip", call(t, c, "Switch.GetConfig", map[string]any{"id": 0})["in_mode"])
	assert.Equal(t, "got ip", call(t, c, "WiFi.GetStatus", nil)["status"])
	assert.Equal(t, map[string]any{"connected": true}, call(t, c, "Cloud.GetStatus", nil))
	assert.Equal(t, d.ID(), call(t, c, "MQTT.GetConfig", nil)["client_id"])

	assert.Equal(t, map[string]any{"connected": true}, call(t, c, "Ws.GetStatus", nil))
	wsCfg := call(t, c, "Ws.GetConfig", nil)
	assert.Equal(t, true, wsCfg["enable"])
	assert.Equal(t, "ca.pem", wsCfg["ssl_ca"])
}

func TestListMethods(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})
	var res struct {
		Methods []string `json:"methods"`
	}
	c.CallT(t, "Shelly.ListMethods", nil, &res)
	for _, m := range []string{
		"Shelly.GetDeviceInfo", "Shelly.GetStatus", "Shelly.GetConfig", "Shelly.ListMethods",
		"Shelly.Reboot", "Shelly.GetComponents", "Sys.GetStatus", "Sys.GetConfig",
		"Switch.Set", "Switch.Toggle", "Switch.GetStatus", "Switch.GetConfig",
		"Input.GetStatus", "Input.GetConfig", "Ws.GetConfig", "Ws.SetConfig", "Ws.GetStatus",
		"WiFi.GetStatus", "Cloud.GetStatus", "MQTT.GetStatus", "BLE.GetStatus",
	} {
		assert.Contains(t, res.Methods, m)
	}
}

func TestMethodNamesIgnoreCase(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})
	ctx := testCtx(t)
	for i, method := range []string{"shelly.getdeviceinfo", "SHELLY.GETDEVICEINFO", "Shelly.getDeviceInfo"} {
		raw, err := c.CallRaw(ctx, []byte(`{"id":"q`+string(rune('0'+i))+`","src":"user_1","method":"`+method+`"}`))
		require.NoError(t, err)
		var resp struct {
			Dst    string `json:"dst"`
			Result struct {
				ID string `json:"id"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(raw, &resp))
		assert.Equal(t, testID, resp.Result.ID, method)
		assert.Equal(t, "user_1", resp.Dst)
	}
	raw, err := c.CallRaw(ctx, []byte(`{"id":7,"method":"switch.toggle","params":{"id":0}}`))
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"result":{"was_on":false}`)
	c.ExpectStatusT(t)
}

func TestSwitchToggleAndSetNotify(t *testing.T) {
	d, _, c, _ := connect(t, device.Options{})

	assert.Equal(t, map[string]any{"was_on": false}, call(t, c, "Switch.Toggle", map[string]any{"id": 0}))
	delta := c.ExpectStatusT(t)
	assert.Equal(t, []string{"switch:0"}, keys(delta.Changes))
	assert.JSONEq(t, `{"id":0,"output":true,"source":"WS_in"}`, string(delta.Changes["switch:0"]))
	assert.True(t, d.Output())

	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.Equal(t, true, st["output"])
	assert.Equal(t, "WS_in", st["source"])
	assert.InDelta(t, device.DefaultLoad, st["apower"], 1e-9)
	assert.Greater(t, st["current"], 0.0)

	assert.Equal(t, map[string]any{"was_on": true}, call(t, c, "Switch.Set", map[string]any{"id": 0, "on": false}))
	delta = c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"output":false,"source":"WS_in"}`, string(delta.Changes["switch:0"]))
	st = call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.EqualValues(t, 0, st["apower"])

	// Local changes report their own source.
	d.Toggle("button")
	delta = c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"output":true,"source":"button"}`, string(delta.Changes["switch:0"]))
	d.SetSwitch(false, "loopback")
	delta = c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"output":false,"source":"loopback"}`, string(delta.Changes["switch:0"]))

	// The full status of the next connection carries the state.
	assert.Equal(t, map[string]any{"was_on": false}, call(t, c, "Switch.Set", map[string]any{"id": 0, "on": true}))
	c.ExpectStatusT(t)
}

func TestSwitchToggleAfter(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})

	call(t, c, "Switch.Set", map[string]any{"id": 0, "on": true, "toggle_after": 0.05})
	delta := obj(t, c.ExpectStatusT(t).Changes["switch:0"])
	assert.Equal(t, true, delta["output"])
	assert.Equal(t, 0.05, delta["timer_duration"])
	assert.Contains(t, delta, "timer_started_at")

	delta = obj(t, c.ExpectStatusT(t).Changes["switch:0"])
	assert.Equal(t, map[string]any{"id": 0.0, "output": false, "source": "timer"}, delta)
	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.NotContains(t, st, "timer_started_at")
}

func TestPowerDeltas(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{PowerDeltas: true, Load: 100})
	call(t, c, "Switch.Toggle", map[string]any{"id": 0})
	assert.JSONEq(t, `{"id":0,"output":true,"source":"WS_in"}`, string(c.ExpectStatusT(t).Changes["switch:0"]))
	power := obj(t, c.ExpectStatusT(t).Changes["switch:0"])
	assert.EqualValues(t, 100, power["apower"])
	assert.Contains(t, power, "current")
	assert.Contains(t, power, "aenergy")
}

func TestErrors(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Switch.Set", map[string]any{"id": 7, "on": true}, shellyws.CodeNotFound, "Bad id=7"},
		{"Switch.Toggle", map[string]any{"id": 7}, shellyws.CodeNotFound, "Bad id=7"},
		{"Switch.GetStatus", map[string]any{"id": 7}, shellyws.CodeNotFound, "Bad id=7"},
		{"Switch.GetConfig", map[string]any{"id": 1}, shellyws.CodeNotFound, "Bad id=1"},
		{"Input.GetStatus", map[string]any{"id": 7}, shellyws.CodeNotFound, "Bad id=7"},
		{"Switch.Set", map[string]any{"on": true}, shellyws.CodeInvalidArgument, "Missing required argument 'id'!"},
		{"Switch.Toggle", nil, shellyws.CodeInvalidArgument, "Missing required argument 'id'!"},
		{"Input.GetStatus", map[string]any{}, shellyws.CodeInvalidArgument, "Missing required argument 'id'!"},
		{"Switch.Set", map[string]any{"id": 0}, shellyws.CodeInvalidArgument, "Missing required argument 'on'!"},
		{"Switch.Set", map[string]any{"id": 0, "on": "yes"}, shellyws.CodeInvalidArgument, "'on' has the wrong type"},
		{"Switch.Set", map[string]any{"id": "0", "on": true}, shellyws.CodeInvalidArgument, "'id' has the wrong type"},
		{"Switch.Set", map[string]any{"id": 0, "on": true, "toggle_after": -1}, shellyws.CodeInvalidArgument, "toggle_after"},
		{"Switch.Set", []int{1}, shellyws.CodeInvalidArgument, "expected an object"},
		{"Shelly.Reboot", map[string]any{"delay_ms": -5}, shellyws.CodeInvalidArgument, "delay_ms"},
		{"Shelly.Reboot", map[string]any{"delay_ms": "soon"}, shellyws.CodeInvalidArgument, "'delay_ms' has the wrong type"},
		{"Shelly.GetComponents", map[string]any{"offset": -1}, shellyws.CodeInvalidArgument, "offset"},
		{"Ws.SetConfig", map[string]any{}, shellyws.CodeInvalidArgument, "config"},
		{"Ws.SetConfig", map[string]any{"config": map[string]any{"ssl_ca": "bogus"}}, shellyws.CodeInvalidArgument, "ssl_ca"},
		{"Nope.Nothing", nil, shellyws.CodeNoHandler, "No handler for Nope.Nothing"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v: %v", tc.method, tc.params, e)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
	// None of it changed anything.
	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.Equal(t, false, st["output"])
	assert.EqualValues(t, dumpCfgRev, call(t, c, "Sys.GetStatus", nil)["cfg_rev"])
}

func TestGetComponents(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{})

	// What Home Assistant asks during set-up.
	var raw json.RawMessage
	c.CallT(t, "Shelly.GetComponents", map[string]any{"dynamic_only": true, "offset": 0}, &raw)
	assert.JSONEq(t, `{"components":[],"cfg_rev":35,"offset":0,"total":0}`, string(raw))

	// Without dynamic_only: the static components, paged.
	var got []string
	for offset := 0; ; {
		res := call(t, c, "Shelly.GetComponents", map[string]any{"offset": offset})
		assert.EqualValues(t, 9, res["total"])
		assert.EqualValues(t, offset, res["offset"])
		assert.EqualValues(t, dumpCfgRev, res["cfg_rev"])
		page := res["components"].([]any)
		require.LessOrEqual(t, len(page), device.ComponentsPageSize)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			entry := e.(map[string]any)
			got = append(got, entry["key"].(string))
			assert.Contains(t, entry, "status")
			assert.Contains(t, entry, "config")
		}
		offset += len(page)
	}
	assert.Equal(t, []string{"ble", "cloud", "input:0", "mqtt", "script:1", "switch:0", "sys", "wifi", "ws"}, got)

	res := call(t, c, "Shelly.GetComponents", map[string]any{"keys": []string{"switch:0", "nope"}, "include": []string{"status"}})
	assert.EqualValues(t, 1, res["total"])
	entry := res["components"].([]any)[0].(map[string]any)
	assert.Equal(t, "switch:0", entry["key"])
	assert.Contains(t, entry, "status")
	assert.NotContains(t, entry, "config")
}

// TestSetConfigThenRebootMovesServer plays what Home Assistant and Fleet
// Manager do: Ws.SetConfig to their URL, then Shelly.Reboot.
func TestSetConfigThenRebootMovesServer(t *testing.T) {
	clock := newFakeClock()
	d, _, c, fs := connect(t, device.Options{Now: clock.Now})
	assert.EqualValues(t, 0, obj(t, fs.Status["sys"])["uptime"])
	assert.EqualValues(t, 1, obj(t, fs.Status["sys"])["reset_reason"])
	call(t, c, "Switch.Set", map[string]any{"id": 0, "on": true})
	c.ExpectStatusT(t)
	clock.Advance(90 * time.Second)
	assert.EqualValues(t, 90, call(t, c, "Sys.GetStatus", nil)["uptime"])

	srv2 := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/ws"))
	res := call(t, c, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": srv2.URL(), "ssl_ca": "*"}})
	assert.Equal(t, map[string]any{"restart_required": true}, res)

	// Section 15.1: the sys delta first, then config_changed of ws.
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"cfg_rev":36,"restart_required":true}`, string(delta.Changes["sys"]))
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "ws", ev.Events[0].Component)
	assert.Nil(t, ev.Events[0].ID)
	assert.Equal(t, "config_changed", ev.Events[0].Event)
	e := obj(t, ev.Events[0].Raw)
	assert.EqualValues(t, dumpCfgRev+1, e["cfg_rev"])
	assert.Equal(t, true, e["restart_required"])

	sys := call(t, c, "Sys.GetStatus", nil)
	assert.EqualValues(t, dumpCfgRev+1, sys["cfg_rev"])
	assert.Equal(t, true, sys["restart_required"])
	assert.EqualValues(t, dumpCfgRev+1, call(t, c, "Sys.GetConfig", nil)["cfg_rev"])
	assert.EqualValues(t, dumpCfgRev+1, call(t, c, "Shelly.GetComponents", map[string]any{"dynamic_only": true})["cfg_rev"])
	// Stored, not applied: still connected here.
	assert.Equal(t, srv2.URL(), call(t, c, "Ws.GetConfig", nil)["server"])

	// Shelly.Reboot answers null at once; a second one meanwhile is refused.
	raw, err := c.CallRaw(testCtx(t), []byte(`{"id":99,"src":"hass","method":"Shelly.Reboot","params":{"delay_ms":300}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":99,"src":"`+testID+`","dst":"hass","result":null}`, string(raw))
	e2 := rpcError(t, c, "Shelly.Reboot", nil)
	assert.Equal(t, shellyws.CodeFailedPrecondition, e2.Code)
	assert.Contains(t, e2.Message, "shutting down in")

	// The old server sees the connection drop without a close frame, as
	// at a power cycle; the new one a fresh device.
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the old connection stayed up after Shelly.Reboot")
	}
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(c.Err()), "no close frame: %v", c.Err())

	c2 := srv2.AcceptT(t)
	assert.Equal(t, "/api/shelly/ws", c2.RequestURI())
	fs2 := c2.ExpectFullStatusT(t)
	assert.Equal(t, testID, fs2.Src)
	assert.JSONEq(t, `{"connected":true}`, string(fs2.Status["ws"]))
	sys2 := obj(t, fs2.Status["sys"])
	assert.EqualValues(t, 0, sys2["uptime"], "uptime restarts at reboot")
	assert.Equal(t, false, sys2["restart_required"])
	assert.EqualValues(t, 3, sys2["reset_reason"])
	assert.EqualValues(t, dumpCfgRev+1, sys2["cfg_rev"])
	sw := obj(t, fs2.Status["switch:0"])
	assert.Equal(t, false, sw["output"], `the dump's initial_state is "off"`)
	assert.Equal(t, "init", sw["source"])
	assert.False(t, d.Output())

	// Nothing else arrived on the new connection before our call.
	assert.Equal(t, map[string]any{"connected": true}, call(t, c2, "Ws.GetStatus", nil))
}

func TestRebootDefaultDelayReconnects(t *testing.T) {
	_, srv, c, _ := connect(t, device.Options{RebootDelay: 30 * time.Millisecond})
	var res json.RawMessage
	c.CallT(t, "Shelly.Reboot", nil, &res)
	assert.Equal(t, "null", string(res))
	<-c.Done()
	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
}

func TestEnergyMetering(t *testing.T) {
	clock := newFakeClock() // 15:09:26
	d, err := device.New(withModel(device.Options{ID: testID, Now: clock.Now, Load: 120}))
	require.NoError(t, err)

	d.SetSwitch(true, "button")
	clock.Advance(90 * time.Second) // 15:10:56
	d.SetSwitch(false, "button")
	clock.Advance(60 * time.Second) // 15:11:56

	raw, err := json.Marshal(d.Status()["switch:0"])
	require.NoError(t, err)
	st := obj(t, raw)
	ae := st["aenergy"].(map[string]any)
	assert.InDelta(t, dumpEnergy+3.0, ae["total"], 1e-9, "120 W for 90 s is 3 Wh more than the dump's counter")
	// minute_ts is 15:10:00, the last complete minute; by_minute in mWh:
	// 15:10-15:11 had 56 s on, 15:09-15:10 had 34 s, 15:08-15:09 none.
	assert.EqualValues(t, time.Date(2025, 3, 14, 15, 10, 0, 0, time.UTC).Unix(), ae["minute_ts"])
	assert.InDeltaSlice(t, []any{120 * 56 / 3.6, 120 * 34 / 3.6, 0.0}, ae["by_minute"], 1e-3)
	assert.EqualValues(t, 0, st["apower"])
	raw, err = json.Marshal(d.Status()["sys"])
	require.NoError(t, err)
	assert.EqualValues(t, 150, obj(t, raw)["uptime"])
}

func TestRunTwice(t *testing.T) {
	srv := shellywstest.NewServer(t)
	d := startDevice(t, device.Options{ID: testID, Store: enabledStore(srv.URL())})
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	assert.ErrorIs(t, d.Run(context.Background()), shellyws.ErrAlreadyRunning)
}

func TestRebootNeedsRun(t *testing.T) {
	d, err := device.New(withModel(device.Options{ID: testID}))
	require.NoError(t, err)
	_, err = d.Dispatch(context.Background(), &shellyws.Request{Method: "Shelly.Reboot"})
	var e *shellyws.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, shellyws.CodeUnavailable, e.Code)
}

func TestNewRejectsBadID(t *testing.T) {
	for _, id := range []string{"shellyplus1pm", "shellyplus1pm-XYZ", "shellyplus1pm-c049ef8cf4eg", "-c049ef8cf4e0", "shelly plus-c049ef8cf4e0"} {
		_, err := device.New(withModel(device.Options{ID: id}))
		assert.Error(t, err, id)
	}
	d, err := device.New(withModel(device.Options{}))
	require.NoError(t, err)
	assert.NoError(t, device.CheckID(d.ID()))
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
