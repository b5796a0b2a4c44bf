package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// testOTATime is the length of an update in these tests: long enough for
// its ten steps to be told apart, short enough for a test.
const testOTATime = 400 * time.Millisecond

// otaEvent is one sys event of an update.
type otaEvent struct {
	Event           string  `json:"event"`
	Component       string  `json:"component"`
	Msg             *string `json:"msg"`
	ProgressPercent *int    `json:"progress_percent"`
	TimeMS          *int64  `json:"time_ms"`
	TS              float64 `json:"ts"`
}

// updateEvents reads c until the connection ends or an event named until
// arrives, and returns the sys events it read, in order; other frames
// (deltas of the config changes before) are skipped.
func updateEvents(t *testing.T, c *shellywstest.Conn, until string) []otaEvent {
	t.Helper()
	ctx := testCtx(t)
	var evs []otaEvent
	for {
		f, err := c.Next(ctx)
		if errors.Is(err, shellywstest.ErrConnClosed) {
			return evs
		}
		require.NoError(t, err, "events so far: %+v", evs)
		if f.Method != shellywstest.MethodNotifyEvent {
			continue
		}
		var p struct {
			Events []json.RawMessage `json:"events"`
		}
		require.NoError(t, json.Unmarshal(f.Params, &p))
		for _, raw := range p.Events {
			var e otaEvent
			require.NoError(t, json.Unmarshal(raw, &e))
			if e.Component != "sys" || e.Event == "config_changed" {
				continue
			}
			assert.NotContains(t, string(raw), `"id"`, "sys is a singleton: %s", raw)
			evs = append(evs, e)
			if e.Event == until {
				return evs
			}
		}
	}
}

// checkProgress checks the shape aioshelly, Home Assistant and Fleet
// Manager read: ota_begin, ota_progress with integer progress_percent
// that never decreases, then end.
func checkProgress(t *testing.T, evs []otaEvent, end ...string) {
	t.Helper()
	require.NotEmpty(t, evs)
	assert.Equal(t, "ota_begin", evs[0].Event)
	require.NotNil(t, evs[0].Msg)
	assert.Equal(t, "Waiting for data", *evs[0].Msg)
	last, progress := 0, 0
	i := 1
	for ; i < len(evs) && evs[i].Event == "ota_progress"; i++ {
		require.NotNil(t, evs[i].ProgressPercent, "ota_progress without progress_percent")
		assert.GreaterOrEqual(t, *evs[i].ProgressPercent, last, "progress never decreases")
		last = *evs[i].ProgressPercent
		require.NotNil(t, evs[i].Msg)
		progress++
	}
	var got []string
	for _, e := range evs[i:] {
		got = append(got, e.Event)
	}
	assert.Equal(t, end, got)
	if end[0] == "ota_success" {
		assert.Equal(t, 100, last)
		assert.Equal(t, 10, progress, "about every 10 %%")
	}
}

func TestAvailableUpdates(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stable, beta *string
		status       string // sys.available_updates
		check        string // Shelly.CheckForUpdate
	}{
		{"the dump's offer", nil, nil,
			`{"beta":{"version":"1.2.0-beta1"}}`,
			`{"beta":{"version":"1.2.0-beta1","build_id":"20250101-000000/1.2.0-beta1-gsim0000"}}`},
		{"a stable version added", ptr("9.9.9"), nil,
			`{"stable":{"version":"9.9.9"},"beta":{"version":"1.2.0-beta1"}}`,
			`{"stable":{"version":"9.9.9","build_id":"20250101-000000/9.9.9-gsim0000"},"beta":{"version":"1.2.0-beta1","build_id":"20250101-000000/1.2.0-beta1-gsim0000"}}`},
		{"the beta withdrawn", ptr("9.9.9"), ptr(""),
			`{"stable":{"version":"9.9.9"}}`,
			`{"stable":{"version":"9.9.9","build_id":"20250101-000000/9.9.9-gsim0000"}}`},
		{"nothing", ptr(""), ptr(""), `{}`, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, c, fs := connect(t, device.Options{UpdateStable: tc.stable, UpdateBeta: tc.beta})
			sys := func(raw json.RawMessage) string {
				var s struct {
					AvailableUpdates json.RawMessage `json:"available_updates"`
				}
				require.NoError(t, json.Unmarshal(raw, &s))
				return string(s.AvailableUpdates)
			}
			assert.Equal(t, tc.status, sys(fs.Status["sys"]), "NotifyFullStatus")
			var st map[string]json.RawMessage
			c.CallT(t, "Shelly.GetStatus", nil, &st)
			assert.Equal(t, tc.status, sys(st["sys"]), "Shelly.GetStatus")
			var sysSt json.RawMessage
			c.CallT(t, "Sys.GetStatus", nil, &sysSt)
			assert.Equal(t, tc.status, sys(sysSt), "Sys.GetStatus")
			var res json.RawMessage
			c.CallT(t, "Shelly.CheckForUpdate", nil, &res)
			assert.Equal(t, tc.check, string(res))
		})
	}
}

func TestOfferUpdatesNotifies(t *testing.T) {
	store := device.NewMemoryStore()
	d, _, c, _ := connect(t, device.Options{State: store})
	require.NoError(t, d.OfferUpdates(ptr("2.0.0"), nil))
	delta := c.ExpectStatusT(t)
	assert.JSONEq(t, `{"available_updates":{"stable":{"version":"2.0.0"},"beta":{"version":"1.2.0-beta1"}}}`, string(delta.Changes["sys"]))

	// No change, no delta: the next frame is the answer to a call.
	require.NoError(t, d.OfferUpdates(ptr("2.0.0"), nil))
	require.NoError(t, d.OfferUpdates(nil, ptr("")))
	delta = c.ExpectStatusT(t)
	assert.JSONEq(t, `{"available_updates":{"stable":{"version":"2.0.0"}}}`, string(delta.Changes["sys"]))

	var e *shellyws.Error
	require.ErrorAs(t, d.OfferUpdates(ptr("1.0/evil"), nil), &e)
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)

	// Stored: a new device on the same store offers the same.
	d2, err := device.New(withModel(device.Options{ID: testID, State: store}))
	require.NoError(t, err)
	assert.JSONEq(t, `{"stable":{"version":"2.0.0"}}`, string(sysOf(t, d2)["available_updates"]))
	// Options given at New win over the stored offer.
	d3, err := device.New(withModel(device.Options{ID: testID, State: store, UpdateStable: ptr("3.0.0")}))
	require.NoError(t, err)
	assert.JSONEq(t, `{"stable":{"version":"3.0.0"}}`, string(sysOf(t, d3)["available_updates"]))
}

// sysOf is the device's sys status, field by field.
func sysOf(t *testing.T, d *device.Device) map[string]json.RawMessage {
	t.Helper()
	raw, ok := d.Status()["sys"].(json.RawMessage)
	require.True(t, ok)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestBadOfferedVersion(t *testing.T) {
	_, err := device.New(withModel(device.Options{UpdateStable: ptr("9.9.9 ; rm")}))
	assert.ErrorContains(t, err, "stable version")
	_, err = device.New(withModel(device.Options{UpdateBeta: ptr(strings.Repeat("1", 65))}))
	assert.ErrorContains(t, err, "beta version")
}

// TestUpdateByStage: null at once, the events of the update, then the
// reboot of section 11 into the new version, with everything the server
// set kept.
func TestUpdateByStage(t *testing.T) {
	clock := newFakeClock()
	store := device.NewMemoryStore()
	d, srv, c, _ := connect(t, device.Options{UpdateStable: ptr("9.9.9"), OTATime: testOTATime, Now: clock.Now, State: store})
	call(t, c, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": "Pump"}})
	call(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"device": map[string]any{"name": "Cellar"}}})
	before := call(t, c, "Shelly.GetConfig", nil)
	rev := call(t, c, "Sys.GetStatus", nil)["cfg_rev"]

	// The device starts its clock between the request and the answer, so
	// the time from sending is the one bound to be at least OTATime.
	sent := time.Now()
	raw, err := c.CallRaw(testCtx(t), []byte(`{"id":9,"src":"hass","method":"Shelly.Update","params":{"stage":"stable"}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":9,"src":"`+testID+`","dst":"hass","result":null}`, string(raw))
	// A second update while this one runs is refused.
	assert.Equal(t, shellyws.CodeFailedPrecondition, rpcError(t, c, "Shelly.Update", map[string]any{"stage": "stable"}).Code)
	assert.Equal(t, "1.1.0", call(t, c, "Shelly.GetDeviceInfo", nil)["ver"], "the old firmware runs until the reboot")

	evs := updateEvents(t, c, "")
	dropped := time.Since(sent)
	checkProgress(t, evs, "ota_success", "scheduled_restart")
	assert.Equal(t, "Update applied, rebooting", *evs[len(evs)-2].Msg)
	require.NotNil(t, evs[len(evs)-1].TimeMS)
	assert.Positive(t, *evs[len(evs)-1].TimeMS)
	assert.GreaterOrEqual(t, dropped, testOTATime, "the whole update takes OTATime")
	assert.Less(t, dropped, testOTATime+2*time.Second)

	c2 := srv.AcceptT(t)
	fs := c2.ExpectFullStatusT(t)
	sys := obj(t, fs.Status["sys"])
	assert.Equal(t, map[string]any{"beta": map[string]any{"version": "1.2.0-beta1"}}, sys["available_updates"], "the installed stage is gone")
	assert.EqualValues(t, 0, sys["uptime"])
	assert.Equal(t, rev, sys["cfg_rev"], "cfg_rev unchanged")
	const fwID = "20250314-150926/9.9.9-gsim0000"
	info := call(t, c2, "Shelly.GetDeviceInfo", nil)
	assert.Equal(t, "9.9.9", info["ver"])
	assert.Equal(t, fwID, info["fw_id"])
	assert.Equal(t, "Cellar", info["name"])
	after := call(t, c2, "Shelly.GetConfig", nil)
	assert.Equal(t, fwID, after["sys"].(map[string]any)["device"].(map[string]any)["fw_id"])
	assert.Equal(t, fwID, call(t, c2, "Sys.GetConfig", nil)["device"].(map[string]any)["fw_id"])
	after["sys"].(map[string]any)["device"].(map[string]any)["fw_id"] = before["sys"].(map[string]any)["device"].(map[string]any)["fw_id"]
	assert.Equal(t, before, after, "every config as it was but fw_id")
	var check json.RawMessage
	c2.CallT(t, "Shelly.CheckForUpdate", nil, &check)
	assert.Equal(t, `{"beta":{"version":"1.2.0-beta1","build_id":"20250101-000000/1.2.0-beta1-gsim0000"}}`, string(check))
	assert.Equal(t, shellyws.CodeFailedPrecondition, rpcError(t, c2, "Shelly.Update", map[string]any{"stage": "stable"}).Code,
		"nothing stable on offer any more")

	// The installed version survives a reboot and a new device on the
	// same store (a restart of the process).
	call(t, c2, "Shelly.Reboot", map[string]any{"delay_ms": 0})
	waitDone(t, c2, "the connection")
	c3 := srv.AcceptT(t)
	c3.ExpectFullStatusT(t)
	assert.Equal(t, "9.9.9", call(t, c3, "Shelly.GetDeviceInfo", nil)["ver"])
	d2, err := device.New(withModel(device.Options{ID: testID, State: store, UpdateStable: ptr("9.9.9")}))
	require.NoError(t, err)
	info2, err := d2.Dispatch(testCtx(t), &shellyws.Request{Method: "Shelly.GetDeviceInfo"})
	require.NoError(t, err)
	assert.Contains(t, string(info2.(json.RawMessage)), `"fw_id":"`+fwID+`"`)
	assert.Contains(t, string(info2.(json.RawMessage)), `"ver":"9.9.9"`)
	assert.JSONEq(t, `{"beta":{"version":"1.2.0-beta1"}}`, string(sysOf(t, d2)["available_updates"]),
		"the installed version is not offered again, though the option still names it")
	_ = d
}

func TestUpdateRefused(t *testing.T) {
	_, _, c, _ := connect(t, device.Options{OTATime: time.Hour})
	for _, tc := range []struct {
		params any
		code   int
	}{
		{nil, shellyws.CodeFailedPrecondition},                               // stable by default: the dump offers none
		{map[string]any{"stage": "stable"}, shellyws.CodeFailedPrecondition}, // nothing of that stage
		{map[string]any{"stage": "nightly"}, shellyws.CodeFailedPrecondition},
		{map[string]any{"stage": 1}, shellyws.CodeInvalidArgument},
		{map[string]any{"url": "ftp://127.0.0.1/fw.zip"}, shellyws.CodeInvalidArgument},
		{map[string]any{"url": "http:///fw.zip"}, shellyws.CodeInvalidArgument},
		{map[string]any{"url": "http://127.0.0.1/" + strings.Repeat("a", 2100)}, shellyws.CodeInvalidArgument},
		{map[string]any{"url": "http://127.0.0.1/fw.zip", "stage": "beta"}, shellyws.CodeInvalidArgument},
	} {
		e := rpcError(t, c, "Shelly.Update", tc.params)
		assert.Equal(t, tc.code, e.Code, "%v: %s", tc.params, e.Message)
	}
	e := rpcError(t, c, "Shelly.Update", map[string]any{"url": "ftp://admin:hunter22@127.0.0.1/fw.zip?token=s3cr3t"})
	assert.NotContains(t, e.Message, "hunter22")
	assert.NotContains(t, e.Message, "s3cr3t")

	// The dump offers a beta: that one starts, and a second is refused.
	assert.Nil(t, callNull(t, c, "Shelly.Update", map[string]any{"stage": "beta"}))
	assert.Equal(t, shellyws.CodeFailedPrecondition, rpcError(t, c, "Shelly.Update", map[string]any{"stage": "beta"}).Code)
	assert.Equal(t, "ota_begin", updateEvents(t, c, "ota_begin")[0].Event)
}

// callNull calls method and returns its raw result, which must be null.
func callNull(t *testing.T, c *shellywstest.Conn, method string, params any) json.RawMessage {
	t.Helper()
	var raw json.RawMessage
	c.CallT(t, method, params, &raw)
	if string(raw) == "null" {
		return nil
	}
	return raw
}

// firmwareServer serves a firmware image at /fw.zip to the device and
// counts the GETs; other paths are 404.
func firmwareServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if r.URL.Path != "/fw.zip" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(bytes.Repeat([]byte{0x5a}, 64<<10))
	}))
	t.Cleanup(srv.Close)
	return srv, &gets
}

// TestUpdateByURLFails: a 404 or a dead address ends the update with
// ota_error and no reboot; neither the event nor the log shows the
// URL's credentials or query values.
func TestUpdateByURLFails(t *testing.T) {
	fw, gets := firmwareServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	logs := &testkit.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, _, c, _ := connect(t, device.Options{OTATime: testOTATime, Logger: logger})

	for _, tc := range []struct {
		url, msg string
	}{
		{"http://admin:hunter22@" + strings.TrimPrefix(fw.URL, "http://") + "/missing.zip?token=s3cr3t&x=y", "HTTP 404"},
		{"http://admin:hunter22@" + dead + "/fw.zip?token=s3cr3t", "connection refused"},
	} {
		assert.Nil(t, callNull(t, c, "Shelly.Update", map[string]any{"url": tc.url}))
		evs := updateEvents(t, c, "ota_error")
		checkProgress(t, evs, "ota_error")
		msg := *evs[len(evs)-1].Msg
		assert.Contains(t, msg, tc.msg)
		for _, secret := range []string{"hunter22", "s3cr3t", "admin"} {
			assert.NotContains(t, msg, secret)
		}
		// No reboot: the connection stays, the firmware is the same.
		info := call(t, c, "Shelly.GetDeviceInfo", nil)
		assert.Equal(t, "1.1.0", info["ver"])
		assert.Equal(t, "20231219-133934/1.1.0-g34b5d4f", info["fw_id"])
	}
	assert.EqualValues(t, 1, gets.Load())
	out := logs.String()
	assert.Contains(t, out, "firmware update failed")
	assert.Contains(t, out, "token=REDACTED")
	for _, secret := range []string{"hunter22", "s3cr3t", "admin:"} {
		assert.NotContains(t, out, secret)
	}
}

// TestUpdateByURL: a 2xx reboots into the same version with a new build.
func TestUpdateByURL(t *testing.T) {
	fw, gets := firmwareServer(t)
	clock := newFakeClock()
	_, srv, c, _ := connect(t, device.Options{OTATime: testOTATime, Now: clock.Now})
	assert.Nil(t, callNull(t, c, "Shelly.Update", map[string]any{"url": fw.URL + "/fw.zip"}))
	checkProgress(t, updateEvents(t, c, ""), "ota_success", "scheduled_restart")
	assert.EqualValues(t, 1, gets.Load())
	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
	info := call(t, c2, "Shelly.GetDeviceInfo", nil)
	assert.Equal(t, "1.1.0", info["ver"])
	assert.Equal(t, "20250314-150926/1.1.0-gsim0000", info["fw_id"], "a new build: Fleet Manager verifies an update by fw_id")
}

// TestUpdateLostOnReboot: an update under way does not survive a reboot.
func TestUpdateLostOnReboot(t *testing.T) {
	_, srv, c, _ := connect(t, device.Options{UpdateStable: ptr("9.9.9"), OTATime: time.Hour})
	assert.Nil(t, callNull(t, c, "Shelly.Update", nil))
	assert.Equal(t, "ota_begin", updateEvents(t, c, "ota_begin")[0].Event)
	call(t, c, "Shelly.Reboot", map[string]any{"delay_ms": 0})
	waitDone(t, c, "the connection")
	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
	assert.Equal(t, "1.1.0", call(t, c2, "Shelly.GetDeviceInfo", nil)["ver"])
	// Free for a new update, which is still on offer.
	assert.Nil(t, callNull(t, c2, "Shelly.Update", map[string]any{"stage": "stable"}))
	assert.Equal(t, "ota_begin", updateEvents(t, c2, "ota_begin")[0].Event)
}

// TestUpdateStopsWithRun: Run returns while an update fetches from a
// server that never answers (goleak checks the rest).
func TestUpdateStopsWithRun(t *testing.T) {
	started := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	srv := shellywstest.NewServer(t)
	d, err := device.New(withModel(device.Options{ID: testID, Store: enabledStore(srv.URL()), OTATime: testOTATime,
		Extra: []shellyws.Option{fastBackoff()}}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	assert.Nil(t, callNull(t, c, "Shelly.Update", map[string]any{"url": hang.URL + "/fw.zip"}))
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("the device did not GET the url")
	}
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return during an update")
	}
}

// TestUpdateOverHTTP: Shelly.Update on the inbound HTTP channel answers
// null; the events go out on the outbound connection.
func TestUpdateOverHTTP(t *testing.T) {
	d, srv, c, _ := connect(t, device.Options{UpdateStable: ptr("9.9.9"), OTATime: testOTATime})
	h := shellyws.NewHandler(d.Component())
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); h.Close() })
	resp, err := http.Post(hs.URL+"/rpc", "application/json", strings.NewReader(`{"id":1,"method":"Shelly.Update","params":{"stage":"stable"}}`))
	require.NoError(t, err)
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(resp.Body)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body.String(), `"result":null`)
	checkProgress(t, updateEvents(t, c, ""), "ota_success", "scheduled_restart")
	c2 := srv.AcceptT(t)
	c2.ExpectFullStatusT(t)
	assert.Equal(t, "9.9.9", call(t, c2, "Shelly.GetDeviceInfo", nil)["ver"])
}

// TestUpdateMethodsFollowListMethods: a dump whose captured
// Shelly.ListMethods lacks them serves neither.
func TestUpdateMethodsFollowListMethods(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("profile", "dumps", "plus1pm-gen2.json"))
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	top["Shelly.ListMethods"] = json.RawMessage(`{"methods":["Shelly.GetStatus","shelly.checkforupdate"]}`)
	data, err := json.Marshal(top)
	require.NoError(t, err)
	p, err := device.ParseModel("custom", data)
	require.NoError(t, err)
	_, _, c, _ := connect(t, device.Options{Model: p, ID: p.ID("0a1b2c3d4e5f")})
	assert.Equal(t, shellyws.CodeNoHandler, rpcError(t, c, "Shelly.Update", map[string]any{"stage": "beta"}).Code)
	var res json.RawMessage
	c.CallT(t, "Shelly.CheckForUpdate", nil, &res)
	assert.Contains(t, string(res), "1.2.0-beta1")
}

// TestUpdateSleepingDevice: a sleeping device stays awake for its update
// (the idle time is far shorter), reboots into the new version and wakes
// with it.
func TestUpdateSleepingDevice(t *testing.T) {
	srv := shellywstest.NewServer(t)
	startSleeper(t, device.Options{Store: enabledStore(srv.URL()), UpdateStable: ptr("9.9.9"),
		OTATime: testOTATime, AwakeIdle: 50 * time.Millisecond})
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	assert.Nil(t, callNull(t, c, "Shelly.Update", nil))
	checkProgress(t, updateEvents(t, c, ""), "ota_success", "scheduled_restart")
	c2 := srv.AcceptT(t)
	fs := c2.ExpectFullStatusT(t)
	sys := obj(t, fs.Status["sys"])
	assert.Equal(t, map[string]any{"boot": "software_restart", "cause": "undefined"}, sys["wakeup_reason"])
	assert.Equal(t, "9.9.9", call(t, c2, "Shelly.GetDeviceInfo", nil)["ver"])
}
