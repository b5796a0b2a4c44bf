package device_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// connectProfile connects a device of the built-in profile name.
func connectProfile(t *testing.T, name string, o device.Options) (*device.Device, *shellywstest.Conn, *shellywstest.FullStatus) {
	t.Helper()
	p, err := profile.Builtin(name)
	require.NoError(t, err)
	o.Model, o.ID = p, p.ID(profileMAC)
	d, _, c, fs := connect(t, o)
	return d, c, fs
}

// expectDelta reads the next NotifyStatus and returns key's change.
func expectDelta(t *testing.T, c *shellywstest.Conn, key string) map[string]any {
	t.Helper()
	delta := c.ExpectStatusT(t)
	require.Contains(t, delta.Changes, key, "delta %v", delta.Changes)
	return obj(t, delta.Changes[key])
}

func TestSwitchOfAFourChannelModel(t *testing.T) {
	_, c, fs := connectProfile(t, "pro4pmv2-gen2", device.Options{PowerDeltas: true, Load: 100})
	before := obj(t, fs.Status["switch:3"])

	assert.Equal(t, map[string]any{"was_on": before["output"]}, call(t, c, "Switch.Set", map[string]any{"id": 3, "on": true}))
	assert.Equal(t, map[string]any{"id": 3.0, "output": true, "source": "WS_in"}, expectDelta(t, c, "switch:3"))
	power := expectDelta(t, c, "switch:3")
	assert.EqualValues(t, 100, power["apower"])
	assert.Greater(t, power["current"], 0.0)

	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 3})
	assert.Equal(t, true, st["output"])
	assert.EqualValues(t, 100, st["apower"])
	assert.Equal(t, keysOf(before), keysOf(st), "same shape as the dump's")

	e := rpcError(t, c, "Switch.Set", map[string]any{"id": 4, "on": true})
	assert.Equal(t, shellyws.CodeNotFound, e.Code)
	assert.Equal(t, "Bad id=4", e.Message)
}

func TestCoverMovesOverTime(t *testing.T) {
	_, c, fs := connectProfile(t, "plus2pm-gen2-cover", device.Options{CoverTravel: 200 * time.Millisecond})
	st := obj(t, fs.Status["cover:0"])
	require.Equal(t, "open", st["state"])
	require.EqualValues(t, 100, st["current_pos"])

	var res json.RawMessage
	c.CallT(t, "Cover.Close", map[string]any{"id": 0}, &res)
	assert.Equal(t, "null", string(res))
	start := expectDelta(t, c, "cover:0")
	assert.Equal(t, "closing", start["state"])
	assert.Equal(t, "WS_in", start["source"])
	assert.EqualValues(t, 0, start["target_pos"])
	assert.Contains(t, start, "move_started_at")

	// Position reports on the way down, then the arrival.
	last := 100.0
	for {
		step := expectDelta(t, c, "cover:0")
		pos := step["current_pos"].(float64)
		assert.LessOrEqual(t, pos, last, "moves one way")
		last = pos
		if step["state"] != nil {
			assert.Equal(t, "closed", step["state"])
			assert.Equal(t, "close", step["last_direction"])
			break
		}
	}
	assert.EqualValues(t, 0, last)
	st = call(t, c, "Cover.GetStatus", map[string]any{"id": 0})
	assert.Equal(t, "closed", st["state"])
	assert.EqualValues(t, 0, st["current_pos"])
	assert.NotContains(t, st, "target_pos")

	c.CallT(t, "Cover.GoToPosition", map[string]any{"id": 0, "pos": 50}, &res)
	assert.Equal(t, "opening", expectDelta(t, c, "cover:0")["state"])
	for {
		step := expectDelta(t, c, "cover:0")
		if step["state"] != nil {
			assert.Equal(t, "stopped", step["state"])
			assert.EqualValues(t, 50, step["current_pos"])
			break
		}
	}

	// Stop in the middle of a run.
	c.CallT(t, "Cover.Open", map[string]any{"id": 0}, &res)
	assert.Equal(t, "opening", expectDelta(t, c, "cover:0")["state"])
	c.CallT(t, "Cover.Stop", map[string]any{"id": 0}, &res)
	var stopped map[string]any
	for stopped == nil {
		if step := expectDelta(t, c, "cover:0"); step["state"] == "stopped" {
			stopped = step
		}
	}
	assert.Equal(t, "WS_in", stopped["source"])
	pos := stopped["current_pos"].(float64)
	assert.GreaterOrEqual(t, pos, 50.0)
	assert.Less(t, pos, 100.0)
	assert.Equal(t, "stopped", call(t, c, "Cover.GetStatus", map[string]any{"id": 0})["state"])

	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Cover.GoToPosition", map[string]any{"id": 0, "pos": 150}, shellyws.CodeInvalidArgument, "'pos': must be 0 to 100"},
		{"Cover.GoToPosition", map[string]any{"id": 0}, shellyws.CodeInvalidArgument, "'pos' or 'rel'"},
		{"Cover.GoToPosition", map[string]any{"id": 0, "pos": "top"}, shellyws.CodeInvalidArgument, "'pos' has the wrong type"},
		{"Cover.Open", map[string]any{}, shellyws.CodeInvalidArgument, "Missing required argument 'id'!"},
		{"Cover.Close", map[string]any{"id": 2}, shellyws.CodeNotFound, "Bad id=2"},
		{"Cover.Open", map[string]any{"id": 0, "duration": -1}, shellyws.CodeInvalidArgument, "'duration'"},
		{"Switch.Set", map[string]any{"id": 0, "on": true}, shellyws.CodeNoHandler, "No handler for Switch.Set"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v: %v", tc.method, tc.params, e)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
}

func TestLightSetToggleBrightness(t *testing.T) {
	_, c, fs := connectProfile(t, "plus010v-gen2", device.Options{})
	require.Equal(t, false, obj(t, fs.Status["light:0"])["output"])

	var res json.RawMessage
	c.CallT(t, "Light.Set", map[string]any{"id": 0, "on": true, "brightness": 80}, &res)
	assert.Equal(t, "null", string(res))
	assert.Equal(t, map[string]any{"id": 0.0, "output": true, "source": "WS_in", "brightness": 80.0}, expectDelta(t, c, "light:0"))
	st := call(t, c, "Light.GetStatus", map[string]any{"id": 0})
	assert.Equal(t, true, st["output"])
	assert.EqualValues(t, 80, st["brightness"])

	assert.Equal(t, map[string]any{"was_on": true}, call(t, c, "Light.Toggle", map[string]any{"id": 0}))
	assert.Equal(t, false, expectDelta(t, c, "light:0")["output"])

	for _, tc := range []struct {
		params any
		msg    string
	}{
		{map[string]any{"id": 0, "brightness": 101}, "'brightness': must be 0 to 100"},
		{map[string]any{"id": 0}, "Missing required argument"},
		{map[string]any{"id": 0, "rgb": []int{1, 2, 3}}, "'rgb'"},
		{map[string]any{"id": 0, "on": 1}, "'on' has the wrong type"},
	} {
		e := rpcError(t, c, "Light.Set", tc.params)
		assert.Equal(t, shellyws.CodeInvalidArgument, e.Code, "%v", tc.params)
		assert.Contains(t, e.Message, tc.msg, "%v", tc.params)
	}
}

func TestRGBSetColour(t *testing.T) {
	_, c, _ := connectProfile(t, "plusrgbwpm-gen2-rgb", device.Options{})
	var res json.RawMessage
	c.CallT(t, "RGB.Set", map[string]any{"id": 0, "on": true, "rgb": []int{255, 10, 0}}, &res)
	delta := expectDelta(t, c, "rgb:0")
	assert.Equal(t, []any{255.0, 10.0, 0.0}, delta["rgb"])
	assert.Equal(t, []any{255.0, 10.0, 0.0}, call(t, c, "RGB.GetStatus", map[string]any{"id": 0})["rgb"])
	e := rpcError(t, c, "RGB.Set", map[string]any{"id": 0, "rgb": []int{256, 0, 0}})
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)
}

func TestCCTSetTemperature(t *testing.T) {
	_, c, _ := connectProfile(t, "duobulb-gen3", device.Options{})
	var res json.RawMessage
	c.CallT(t, "CCT.Set", map[string]any{"id": 0, "on": true, "ct": 4000, "brightness": 40}, &res)
	delta := expectDelta(t, c, "cct:0")
	assert.EqualValues(t, 4000, delta["ct"])
	assert.EqualValues(t, 40, delta["brightness"])
	assert.Equal(t, true, delta["output"])
	st := call(t, c, "CCT.GetStatus", map[string]any{"id": 0})
	assert.EqualValues(t, 4000, st["ct"])
	assert.EqualValues(t, device.DefaultLoad*0.4, st["apower"], "the load scaled by brightness")
	assert.Contains(t, st, "tag", "the dump's other keys stay")
	e := rpcError(t, c, "CCT.Set", map[string]any{"id": 0, "ct": 20})
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)
	assert.Contains(t, e.Message, "'ct'")
}

func TestPM1CountsEnergy(t *testing.T) {
	clock := newFakeClock()
	p, err := profile.Builtin("pmmini-gen3")
	require.NoError(t, err)
	pm := p.Status.Object("pm1:0")
	power, _ := pm.Number("apower")
	base, _ := pm.Object("aenergy").Number("total")
	require.Positive(t, power)
	_, c, _ := connectProfile(t, "pmmini-gen3", device.Options{Now: clock.Now})
	clock.Advance(time.Hour)
	st := call(t, c, "PM1.GetStatus", map[string]any{"id": 0})
	assert.InDelta(t, base+power, st["aenergy"].(map[string]any)["total"], 0.001, "an hour at the dump's power")
}

func TestInputEvents(t *testing.T) {
	d, c, _ := connectProfile(t, "plusi4-gen2", device.Options{})
	for _, event := range []string{"single_push", "double_push", "long_push", "btn_down", "btn_up"} {
		_, err := d.HandleSim(context.Background(), &shellyws.Request{
			Method: "Sim.Input", Params: json.RawMessage(`{"id":2,"event":"` + event + `"}`),
		})
		require.NoError(t, err)
		ev := c.ExpectEventT(t)
		require.Len(t, ev.Events, 1)
		assert.Equal(t, "input:2", ev.Events[0].Component)
		require.NotNil(t, ev.Events[0].ID)
		assert.Equal(t, 2, *ev.Events[0].ID)
		assert.Equal(t, event, ev.Events[0].Event)
		assert.Contains(t, obj(t, ev.Events[0].Raw), "ts")
	}
	for _, tc := range []struct {
		params string
		code   int
		msg    string
	}{
		{`{"id":9,"event":"single_push"}`, shellyws.CodeNotFound, "Bad id=9"},
		{`{"id":0,"event":"triple_push"}`, shellyws.CodeInvalidArgument, `"triple_push" is not one of`},
		{`{"event":"single_push"}`, shellyws.CodeInvalidArgument, "Missing required argument 'id'!"},
		{`{"id":0}`, shellyws.CodeInvalidArgument, "Missing required argument 'event'"},
		{`{"id":"0","event":"single_push"}`, shellyws.CodeInvalidArgument, "'id' has the wrong type"},
	} {
		_, err := d.HandleSim(context.Background(), &shellyws.Request{Method: "Sim.Input", Params: json.RawMessage(tc.params)})
		e := shellyws.AsError(err)
		require.NotNil(t, e, tc.params)
		assert.Equal(t, tc.code, e.Code, tc.params)
		assert.Contains(t, e.Message, tc.msg, tc.params)
	}
	// Not a device method: the outbound channel answers 404.
	e := rpcError(t, c, "Sim.Input", map[string]any{"id": 0, "event": "single_push"})
	assert.Equal(t, shellyws.CodeNoHandler, e.Code)
}

func TestTelemetryPushesReadings(t *testing.T) {
	p, err := profile.Builtin("pmmini-gen3")
	require.NoError(t, err)
	base, _ := p.Status.Object("pm1:0").Number("voltage")
	_, c, _ := connectProfile(t, "pmmini-gen3", device.Options{Telemetry: 20 * time.Millisecond})
	seen := map[float64]bool{}
	for range 3 {
		pm := expectDelta(t, c, "pm1:0")
		assert.EqualValues(t, 0, pm["id"])
		v := pm["voltage"].(float64)
		assert.InDelta(t, base, v, base*0.011, "drifts around the dump's reading")
		assert.Contains(t, pm, "current")
		assert.Contains(t, pm, "apower")
		seen[v] = true
	}
	assert.Greater(t, len(seen), 1, "readings move")
	st := call(t, c, "PM1.GetStatus", map[string]any{"id": 0})
	assert.InDelta(t, base, st["voltage"], base*0.011)
}

func TestTelemetrySensors(t *testing.T) {
	_, c, _ := connectProfile(t, "plusi4-gen2", device.Options{Telemetry: 20 * time.Millisecond})
	delta := c.ExpectStatusT(t)
	temp := obj(t, delta.Changes["temperature:100"])
	assert.Contains(t, temp, "tC")
	assert.InDelta(t, temp["tC"].(float64)*9/5+32, temp["tF"], 0.11)
	assert.Contains(t, obj(t, delta.Changes["humidity:100"]), "rh")
}

func TestBootResetsRAM(t *testing.T) {
	clock := newFakeClock()
	d, c, _ := connectProfile(t, "1pm-gen4", device.Options{Now: clock.Now})
	clock.Advance(time.Minute)
	assert.EqualValues(t, 60, call(t, c, "Sys.GetStatus", nil)["uptime"])
	call(t, c, "Ws.SetConfig", map[string]any{"config": map[string]any{"ssl_ca": "*"}})
	c.ExpectStatusT(t)
	c.ExpectEventT(t)
	call(t, c, "Switch.Toggle", map[string]any{"id": 0})
	c.ExpectStatusT(t)
	rev := call(t, c, "Sys.GetStatus", nil)["cfg_rev"]

	d.Boot()
	sys := call(t, c, "Sys.GetStatus", nil)
	assert.EqualValues(t, 0, sys["uptime"])
	assert.EqualValues(t, 3, sys["reset_reason"])
	assert.Equal(t, false, sys["restart_required"])
	assert.Equal(t, rev, sys["cfg_rev"], "stored config persists")
	sw := call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.Equal(t, "init", sw["source"])
	p, err := profile.Builtin("1pm-gen4")
	require.NoError(t, err)
	initial, _ := p.Config.Object("switch:0").String("initial_state")
	require.Equal(t, "match_input", initial)
	input, _ := p.Status.Object("input:0").Get("state")
	assert.Equal(t, input, sw["output"], "initial_state match_input: the relay follows input:0")
	assert.Equal(t, "*", call(t, c, "Ws.GetConfig", nil)["ssl_ca"])
}
