package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

const kitID = "shellypro2pm-0a1b2c3d4e5f"

// kitModel is the vendor's device of the kit issue: two metering relays,
// a button input and a temperature sensor.
func kitModel(t testing.TB, extra ...device.Spec) *device.Model {
	t.Helper()
	specs := append([]device.Spec{
		device.SwitchSpec{ID: 0, Metering: true},
		device.SwitchSpec{ID: 1, Metering: true},
		device.InputSpec{ID: 0},
		device.TemperatureSpec{ID: 0},
	}, extra...)
	m, err := device.NewModel(device.Info{Model: "SPSW-202XE16EU", App: "Pro2PM", IDPrefix: "shellypro2pm", Ver: "1.4.4"}, specs...)
	require.NoError(t, err)
	return m
}

func connectKit(t *testing.T, o device.Options) (*device.Device, *shellywstest.Conn, *shellywstest.FullStatus) {
	t.Helper()
	if o.Model == nil {
		o.Model = kitModel(t)
	}
	if o.ID == "" {
		o.ID = kitID
	}
	d, _, c, fs := connect(t, o)
	return d, c, fs
}

func TestNewModelAnswersLikeADevice(t *testing.T) {
	_, c, fs := connectKit(t, device.Options{})
	keys := make([]string, 0, len(fs.Status))
	for k := range fs.Status {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"ble", "cloud", "input:0", "mqtt", "switch:0", "switch:1", "sys", "temperature:0", "wifi", "ws"}, keys)
	assert.Equal(t, "0A1B2C3D4E5F", obj(t, fs.Status["sys"])["mac"])

	info := call(t, c, "Shelly.GetDeviceInfo", nil)
	assert.Equal(t, kitID, info["id"])
	assert.Equal(t, "0A1B2C3D4E5F", info["mac"])
	assert.Equal(t, "SPSW-202XE16EU", info["model"])
	assert.Equal(t, "Pro2PM", info["app"])
	assert.EqualValues(t, 2, info["gen"])
	assert.Equal(t, "1.4.4", info["ver"])
	assert.Nil(t, info["name"])

	cfg := call(t, c, "Shelly.GetConfig", nil)
	mqtt := cfg["mqtt"].(map[string]any)
	assert.Equal(t, kitID, mqtt["client_id"], "ids follow the device")
	assert.Equal(t, kitID, mqtt["topic_prefix"])
	sw := call(t, c, "Switch.GetConfig", map[string]any{"id": 1})
	assert.EqualValues(t, 1, sw["id"])
	assert.Equal(t, "match_input", sw["initial_state"])

	var list struct{ Methods []string }
	c.CallT(t, "Shelly.ListMethods", nil, &list)
	for _, m := range []string{"Switch.Set", "Switch.Toggle", "Switch.SetConfig", "Input.SetConfig", "Temperature.GetStatus",
		"Sys.SetConfig", "WiFi.SetConfig", "Ws.SetConfig", "Shelly.Reboot", "Shelly.GetComponents", "Shelly.SetAuth"} {
		assert.Contains(t, list.Methods, m)
	}
	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 0})
	assert.Contains(t, st, "apower")
	assert.Contains(t, st, "aenergy")

	comps := call(t, c, "Shelly.GetComponents", map[string]any{"offset": 0})
	assert.EqualValues(t, 10, comps["total"], "every component, paged")
}

func TestNewModelRefusesBadSpecs(t *testing.T) {
	info := device.Info{Model: "X", App: "X", IDPrefix: "shellyx"}
	for name, tc := range map[string]struct {
		info  device.Info
		specs []device.Spec
		msg   string
	}{
		"no prefix":       {device.Info{Model: "X", App: "X"}, nil, "IDPrefix"},
		"upper prefix":    {device.Info{Model: "X", App: "X", IDPrefix: "ShellyX"}, nil, "lower-case"},
		"gen 1":           {device.Info{Model: "X", App: "X", IDPrefix: "x", Gen: 1}, nil, "want 2, 3 or 4"},
		"twice":           {info, []device.Spec{device.SwitchSpec{ID: 0}, device.SwitchSpec{ID: 0}}, "added twice"},
		"custom builtin":  {info, []device.Spec{device.CustomSpec{Key: "switch:3"}}, "type of the kit"},
		"custom bad key":  {info, []device.Spec{device.CustomSpec{Key: "Boiler:x"}}, "lower-case"},
		"custom bad json": {info, []device.Spec{device.CustomSpec{Key: "boiler:0", Config: json.RawMessage(`[1]`)}}, "JSON objects"},
		"light kind":      {info, []device.Spec{device.LightSpec{Kind: "disco"}}, "kind"},
		"nil spec":        {info, []device.Spec{nil}, "nil Spec"},
	} {
		_, err := device.NewModel(tc.info, tc.specs...)
		assert.ErrorContains(t, err, tc.msg, name)
	}
}

func TestSetConfigMergesChecksAndNotifies(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	rev := call(t, c, "Sys.GetStatus", nil)["cfg_rev"].(float64)

	res := call(t, c, "Switch.SetConfig", map[string]any{"id": 1, "config": map[string]any{
		"name": "Boiler", "auto_off": true, "auto_off_delay": 30.5, "unknown_key": 1, "id": 7}})
	assert.Equal(t, map[string]any{"restart_required": false}, res)
	// Section 15.1: the sys delta first, then config_changed.
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"cfg_rev":`+jsonNum(rev+1)+`}`, string(delta.Changes["sys"]))
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "switch:1", ev.Events[0].Component)
	require.NotNil(t, ev.Events[0].ID)
	assert.Equal(t, 1, *ev.Events[0].ID)
	e := obj(t, ev.Events[0].Raw)
	assert.Equal(t, "config_changed", e["event"])
	assert.EqualValues(t, rev+1, e["cfg_rev"])
	assert.Equal(t, false, e["restart_required"])

	var raw json.RawMessage
	c.CallT(t, "Switch.GetConfig", map[string]any{"id": 1}, &raw)
	sw := obj(t, raw)
	assert.Equal(t, "Boiler", sw["name"])
	assert.Equal(t, true, sw["auto_off"])
	assert.EqualValues(t, 1, sw["id"], "id is read-only")
	assert.NotContains(t, sw, "unknown_key")
	assert.Contains(t, string(raw), `"auto_off_delay":30.5`, "the literal as sent")
	assert.Equal(t, "follow", sw["in_mode"], "absent keys keep their value")
	assert.EqualValues(t, rev+1, call(t, c, "Sys.GetConfig", nil)["cfg_rev"])
	assert.Equal(t, "Boiler", call(t, c, "Shelly.GetConfig", nil)["switch:1"].(map[string]any)["name"])

	// Nested objects merge key by key; sys.device.name is the device's name.
	call(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"device": map[string]any{"name": "Cellar", "mac": "nope"}}})
	c.ExpectStatusT(t)
	c.ExpectEventT(t)
	sys := call(t, c, "Sys.GetConfig", nil)["device"].(map[string]any)
	assert.Equal(t, "Cellar", sys["name"])
	assert.Equal(t, false, sys["eco_mode"], "untouched keys stay")
	assert.Equal(t, "0A1B2C3D4E5F", sys["mac"], "read-only")
	assert.Equal(t, "Cellar", call(t, c, "Shelly.GetDeviceInfo", nil)["name"])

	// WiFi takes effect at the next boot.
	res = call(t, c, "WiFi.SetConfig", map[string]any{"config": map[string]any{"sta": map[string]any{"ssid": "lab"}}})
	assert.Equal(t, map[string]any{"restart_required": true}, res)
	delta = c.ExpectStatusT(t)
	assert.Contains(t, string(delta.Changes["sys"]), `"restart_required":true`)
	c.ExpectEventT(t)
	assert.Equal(t, true, call(t, c, "Sys.GetStatus", nil)["restart_required"])

	// Refused calls change nothing.
	before := call(t, c, "Sys.GetStatus", nil)["cfg_rev"]
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Switch.SetConfig", map[string]any{"config": map[string]any{"name": "x"}}, shellyws.CodeInvalidArgument, "'id'"},
		{"Switch.SetConfig", map[string]any{"id": 7, "config": map[string]any{}}, shellyws.CodeNotFound, "Bad id=7"},
		{"Switch.SetConfig", map[string]any{"id": 0}, shellyws.CodeInvalidArgument, "'config'"},
		{"Switch.SetConfig", map[string]any{"id": 0, "config": "x"}, shellyws.CodeInvalidArgument, "must be an object"},
		{"Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": 5}}, shellyws.CodeInvalidArgument, "config.name"},
		{"Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"auto_off": "yes"}}, shellyws.CodeInvalidArgument, "config.auto_off"},
		{"Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"in_mode": "sideways"}}, shellyws.CodeInvalidArgument, "config.in_mode"},
		{"Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": "ok", "auto_on_delay": "soon"}}, shellyws.CodeInvalidArgument, "config.auto_on_delay"},
		{"Sys.SetConfig", map[string]any{"config": map[string]any{"device": "x"}}, shellyws.CodeInvalidArgument, "config.device"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%v", tc.params)
		assert.Contains(t, e.Message, tc.msg, "%v", tc.params)
	}
	assert.Equal(t, before, call(t, c, "Sys.GetStatus", nil)["cfg_rev"])
	assert.Nil(t, call(t, c, "Switch.GetConfig", map[string]any{"id": 0})["name"], "the refused name did not stick")
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestStoredStateSurvivesANewProcess(t *testing.T) {
	dir := t.TempDir()
	model := kitModel(t)
	srv := shellywstest.NewServer(t)
	o := device.Options{Model: model, ID: kitID, StateDir: dir, Server: srv.URL(), Password: "s3cret"}
	d := startDevice(t, o)
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	call(t, c, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": "Pump", "initial_state": "on"}})
	rev := call(t, c, "Sys.GetStatus", nil)["cfg_rev"]
	assert.True(t, d.Component().AuthInfo().Enabled)

	// A second device from the same directory is the same device: a new
	// process, or the same after a power cut.
	o.Server, o.Password = "", ""
	d2, err := device.New(o)
	require.NoError(t, err)
	res, err := d2.Dispatch(context.Background(), &shellyws.Request{Method: "Switch.GetConfig", Params: json.RawMessage(`{"id":0}`)})
	require.NoError(t, err)
	assert.Contains(t, string(res.(json.RawMessage)), `"name":"Pump"`)
	res, err = d2.Dispatch(context.Background(), &shellyws.Request{Method: "Sys.GetStatus"})
	require.NoError(t, err)
	assert.Equal(t, rev, obj(t, res.(json.RawMessage))["cfg_rev"])
	assert.True(t, d2.Component().AuthInfo().Enabled, "the password hash is stored too")
	assert.Equal(t, srv.URL(), *d2.Component().GetConfig().Server)
}

// failingStore refuses every save.
type failingStore struct{}

func (failingStore) Load() ([]byte, error) { return nil, nil }
func (failingStore) Save([]byte) error     { return errors.New("disk full at /secret/path/state.json") }

func TestRefusedSaveChangesNothing(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{State: failingStore{}})
	before := call(t, c, "Sys.GetStatus", nil)["cfg_rev"]
	e := rpcError(t, c, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": "x"}})
	assert.Equal(t, shellyws.CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "/secret", "no path on the wire")
	assert.Nil(t, call(t, c, "Switch.GetConfig", map[string]any{"id": 0})["name"])
	assert.Equal(t, before, call(t, c, "Sys.GetStatus", nil)["cfg_rev"])
}

func TestSwitchHooksAndMeter(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	var mu sync.Mutex
	var seen []bool
	d.Switch(0).OnOutput(func(on bool) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, on)
	})
	call(t, c, "Switch.Set", map[string]any{"id": 0, "on": true})
	delta := c.ExpectStatusT(t)
	assert.Contains(t, string(delta.Changes["switch:0"]), `"output":true`)
	d.Switch(0).Set(false, "button")
	delta = c.ExpectStatusT(t)
	assert.Contains(t, string(delta.Changes["switch:0"]), `"source":"button"`)
	mu.Lock()
	assert.Equal(t, []bool{true, false}, seen, "the hook follows every change")
	mu.Unlock()

	d.Switch(1).Set(true, "button")
	c.ExpectStatusT(t)
	d.Switch(1).SetMeter(1150, 230)
	delta = c.ExpectStatusT(t)
	m := obj(t, delta.Changes["switch:1"])
	assert.EqualValues(t, 1150, m["apower"])
	assert.EqualValues(t, 230, m["voltage"])
	assert.EqualValues(t, 5, m["current"])
	st := call(t, c, "Switch.GetStatus", map[string]any{"id": 1})
	assert.EqualValues(t, 1150, st["apower"])
	assert.Nil(t, d.Switch(7))
}

func TestInputDrivesItsSwitch(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	d.Input(0).SetState(true) // in_mode follow: the relay follows
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"state":true}`, string(delta.Changes["input:0"]))
	delta = c.ExpectStatusT(t)
	assert.Contains(t, string(delta.Changes["switch:0"]), `"output":true`)
	assert.True(t, d.Switch(0).Output())

	call(t, c, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"in_mode": "detached"}})
	c.ExpectStatusT(t)
	c.ExpectEventT(t)
	d.Input(0).SetState(false)
	c.ExpectStatusT(t)
	assert.True(t, d.Switch(0).Output(), "detached: the relay stays")

	require.NoError(t, d.Input(0).Push("double_push"))
	ev := c.ExpectEventT(t)
	assert.Equal(t, "double_push", ev.Events[0].Event)
	assert.Error(t, d.Input(0).Push("tap"))
}

func TestUpdateSendsOnlyWhatChanged(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	require.NoError(t, d.SetTemperature(0, 21.5))
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"tC":21.5,"tF":70.7}`, string(delta.Changes["temperature:0"]))
	assert.Len(t, delta.Changes, 1)
	st := call(t, c, "Temperature.GetStatus", map[string]any{"id": 0})
	assert.EqualValues(t, 21.5, st["tC"])
	assert.ErrorContains(t, d.Update("switch:0", map[string]any{"output": true}), "own methods")
	assert.Error(t, d.Update("nope:0", map[string]any{"x": 1}))
}

func TestCustomComponent(t *testing.T) {
	heat := func(ctx context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			On bool `json:"on"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		d := device.FromContext(ctx)
		return nil, d.Update("boiler:0", map[string]any{"heating": p.On})
	}
	model := kitModel(t, device.CustomSpec{
		Key:     "boiler:0",
		Config:  json.RawMessage(`{"name":null,"target_C":55.0}`),
		Status:  json.RawMessage(`{"heating":false,"water_C":48.5}`),
		Methods: map[string]shellyws.DispatcherFunc{"Heat": heat},
	})
	_, c, fs := connectKit(t, device.Options{Model: model})
	assert.JSONEq(t, `{"id":0,"heating":false,"water_C":48.5}`, string(fs.Status["boiler:0"]))
	call(t, c, "Boiler.Heat", map[string]any{"id": 0, "on": true})
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"heating":true}`, string(delta.Changes["boiler:0"]))
	res := call(t, c, "Boiler.SetConfig", map[string]any{"id": 0, "config": map[string]any{"target_C": 60}})
	assert.Equal(t, false, res["restart_required"])
	var raw json.RawMessage
	c.CallT(t, "Boiler.GetConfig", map[string]any{"id": 0}, &raw)
	assert.JSONEq(t, `{"id":0,"name":null,"target_C":60}`, string(raw))
	var list struct{ Methods []string }
	c.CallT(t, "Shelly.ListMethods", nil, &list)
	assert.Contains(t, list.Methods, "Boiler.Heat")
	assert.Contains(t, list.Methods, "Boiler.SetConfig")
}

func TestDelayedRebootDoesNotHoldUpShutdown(t *testing.T) {
	srv := shellywstest.NewServer(t)
	d, err := device.New(device.Options{Model: kitModel(t), ID: kitID, Server: srv.URL()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 60000}, nil)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Run waited for the pending reboot")
	}
	assert.False(t, strings.Contains(d.ID(), "shellyplus"))
}
