package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, decodeJSON(json.RawMessage(s), &m))
	return m
}

func TestMergeStatus(t *testing.T) {
	status := decode(t, `{
		"sys": {"mac": "C049EF8CF4E0", "cfg_rev": 7, "uptime": 10},
		"switch:0": {"id": 0, "output": false, "source": "init", "apower": 0,
		             "aenergy": {"total": 1.5, "by_minute": [0, 0, 0], "minute_ts": 100}},
		"input:0": {"id": 0, "state": false},
		"script:1": {"id": 1, "running": true}
	}`)
	for _, delta := range []string{
		// Component-level overlay: only the keys sent change.
		`{"switch:0": {"id": 0, "output": true, "source": "WS_in"}}`,
		// Nested objects merge too, as Home Assistant's library does.
		`{"switch:0": {"aenergy": {"total": 2.25}}}`,
		// A null component is gone.
		`{"script:1": null}`,
		// A new component appears; a non-object replaces.
		`{"em:0": {"id": 0, "act_power": 12.5}, "sys": {"cfg_rev": 8}}`,
	} {
		mergeStatus(status, decode(t, delta))
	}
	got, err := json.Marshal(status)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"sys": {"mac": "C049EF8CF4E0", "cfg_rev": 8, "uptime": 10},
		"switch:0": {"id": 0, "output": true, "source": "WS_in", "apower": 0,
		             "aenergy": {"total": 2.25, "by_minute": [0, 0, 0], "minute_ts": 100}},
		"input:0": {"id": 0, "state": false},
		"em:0": {"id": 0, "act_power": 12.5}
	}`, string(got))
}

func TestMergeKeepsNumbersAsSent(t *testing.T) {
	status := decode(t, `{"sys":{"unixtime":1708381883123456789}}`)
	mergeStatus(status, decode(t, `{"switch:0":{"voltage":232.80}}`))
	got, _ := json.Marshal(status)
	assert.Contains(t, string(got), `1708381883123456789`)
	assert.Contains(t, string(got), `232.80`)
}

// hubEnv is a hub on loopback: its websocket endpoint and its API.
type hubEnv struct {
	hub   *Hub
	wsURL string
	api   *httptest.Server
}

func startHub(t *testing.T) *hubEnv {
	hub := NewHub(t.Logf)
	ws := httptest.NewServer(hub)
	api := httptest.NewServer(hub.API())
	t.Cleanup(func() {
		api.Close()
		hub.Close() // closes the device connections, so ws.Close does not wait for them
		ws.Close()
	})
	return &hubEnv{hub: hub, wsURL: "ws" + strings.TrimPrefix(ws.URL, "http") + "/shelly", api: api}
}

// runDevice runs a simulated device against url until stop is called or the
// test ends.
func runDevice(t *testing.T, url string) (d *device.Device, stop func()) {
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &url
	d, err := device.New(withModel(device.Options{Store: shellyws.NewMemoryStore(cfg)}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.NoError(t, d.Run(ctx))
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("device did not stop")
		}
	}
	t.Cleanup(stop)
	return d, stop
}

func (e *hubEnv) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(e.api.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func (e *hubEnv) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(e.api.URL+path, "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// switchOutput reads switch:0.output of the merged status; the caller holds
// the hub's lock.
func switchOutput(h *Hub, id string) (output any, apower any) {
	d := h.devices[id]
	if d == nil || d.status == nil {
		return nil, nil
	}
	sw, _ := d.status["switch:0"].(map[string]any)
	return sw["output"], sw["apower"]
}

func TestCallThroughHTTPToSimulatedDevice(t *testing.T) {
	env := startHub(t)
	d, stop := runDevice(t, env.wsURL)
	id := d.ID()
	h := env.hub

	require.NoError(t, h.wait(testCtx(t), func() bool {
		dev := h.devices[id]
		return dev != nil && dev.sess != nil && dev.fullCount == 1
	}))

	code, body := env.get(t, "/devices")
	require.Equal(t, http.StatusOK, code)
	var list []DeviceSummary
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0].ID)
	assert.True(t, list[0].Connected)

	// A call through the API: the device's own response comes back.
	code, body = env.post(t, "/devices/"+id+"/call", `{"method":"Switch.Toggle","params":{"id":0}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var resp struct {
		Src    string          `json:"src"`
		Dst    string          `json:"dst"`
		Result json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal(body, &resp))
	assert.Equal(t, id, resp.Src)
	assert.Equal(t, hubSrc, resp.Dst)
	assert.JSONEq(t, `{"was_on":false}`, string(resp.Result))

	// The NotifyStatus delta is merged into the full status: output and
	// source change, the metering fields of the full status stay.
	require.NoError(t, h.wait(testCtx(t), func() bool {
		out, _ := switchOutput(h, id)
		return out == true
	}))
	code, body = env.get(t, "/devices/"+id+"/status")
	require.Equal(t, http.StatusOK, code)
	var status map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &status))
	assert.Equal(t, "WS_in", status["switch:0"]["source"])
	assert.Contains(t, status["switch:0"], "apower")
	assert.Contains(t, status["switch:0"], "aenergy")
	assert.Equal(t, d.MAC(), status["sys"]["mac"])
	assert.Equal(t, map[string]any{"connected": true}, status["ws"])

	// An RPC error is the device's answer too.
	code, body = env.post(t, "/devices/"+id+"/call", `{"method":"Switch.Set","params":{"id":7,"on":true}}`)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), `"error":{"code":-105,"message":"Bad id=7"}`)
	code, body = env.post(t, "/devices/"+id+"/call", `{"method":"shelly.getdeviceinfo"}`)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), `"model":"SNSW-001P16EU"`)

	// API errors.
	code, _ = env.post(t, "/devices/shellyplus1pm-000000000000/call", `{"method":"Shelly.GetStatus"}`)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = env.get(t, "/devices/shellyplus1pm-000000000000/status")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = env.post(t, "/devices/"+id+"/call", `not json`)
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = env.post(t, "/devices/"+id+"/call", `{"method":"Switch.Toggle","params":[0]}`)
	assert.Equal(t, http.StatusBadRequest, code)

	// A device that went away is listed as disconnected, its status kept.
	stop()
	require.NoError(t, h.wait(testCtx(t), func() bool { return h.devices[id].sess == nil }))
	code, _ = env.post(t, "/devices/"+id+"/call", `{"method":"Shelly.GetStatus"}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	code, body = env.get(t, "/devices/"+id+"/status")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), `"output":true`)
}

func TestFullStatusReplacesAfterReconnect(t *testing.T) {
	env := startHub(t)
	h := env.hub
	d, _ := runDevice(t, env.wsURL)
	id := d.ID()
	require.NoError(t, h.wait(testCtx(t), func() bool {
		dev := h.devices[id]
		return dev != nil && dev.fullCount == 1
	}))
	// Shelly.Reboot restarts the component: a new connection, a new full
	// status, and the old session's end does not mark the device offline.
	_, err := h.Call(testCtx(t), id, "Shelly.Reboot", json.RawMessage(`{"delay_ms":0}`))
	require.NoError(t, err)
	require.NoError(t, h.wait(testCtx(t), func() bool {
		dev := h.devices[id]
		return dev.fullCount == 2 && dev.sess != nil
	}))
	assert.True(t, h.Devices()[0].Connected)
}

// withModel gives o the default model, a Plus 1PM, unless it names one.
func withModel(o device.Options) device.Options {
	if o.Model == nil {
		p, err := profile.Builtin(profile.Default)
		if err != nil {
			panic(err)
		}
		o.Model = p
	}
	return o
}

// The server's log of the calls it makes holds no secret: Shelly.SetAuth's
// ha1 and a URL's query values are redacted, as in the library's logs.
func TestCallLogHoldsNoSecret(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	hub := NewHub(func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	ws := httptest.NewServer(hub)
	api := httptest.NewServer(hub.API())
	t.Cleanup(func() { api.Close(); hub.Close(); ws.Close() })
	env := &hubEnv{hub: hub, wsURL: "ws" + strings.TrimPrefix(ws.URL, "http") + "/shelly", api: api}
	d, _ := runDevice(t, env.wsURL)
	id := d.ID()
	require.NoError(t, hub.wait(testCtx(t), func() bool {
		dev := hub.devices[id]
		return dev != nil && dev.sess != nil
	}))

	const ha1 = "687c2e535d9e31a0401f641f1f8dbcf271f596204d8fb9f8ac84b4acf13845fc"
	code, body := env.post(t, "/devices/"+id+"/call",
		`{"method":"Shelly.SetAuth","params":{"user":"admin","realm":"`+id+`","ha1":"`+ha1+`"}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, body = env.post(t, "/devices/"+id+"/call",
		`{"method":"Ws.SetConfig","params":{"config":{"server":"ws://127.0.0.1:1/shelly?remote_key=TOKEN-SECRET-XYZ"}}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, lines)
	logged := strings.Join(lines, "\n")
	assert.Contains(t, logged, "Shelly.SetAuth", "the calls are logged")
	assert.NotContains(t, logged, ha1)
	assert.NotContains(t, logged, "TOKEN-SECRET-XYZ")
}
