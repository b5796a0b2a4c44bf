package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const id = "shellypro2pm-0a1b2c3d4e5f"

// fakeBoard records what the device drives.
type fakeBoard struct {
	mu     sync.Mutex
	relays map[int]bool
}

func (b *fakeBoard) SetRelay(ch int, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.relays[ch] = on
}
func (b *fakeBoard) relay(ch int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.relays[ch]
}
func (b *fakeBoard) Power(ch int) (float64, float64) {
	if b.relay(ch) {
		return 100, 230
	}
	return 0, 230
}
func (b *fakeBoard) Temperature() float64 { return 45.5 }

// start runs a device with its state in dir against srv.
func start(t *testing.T, srv *shellywstest.Server, dir, password string) (*device.Device, *fakeBoard, *shellywstest.Conn) {
	hw := &fakeBoard{relays: map[int]bool{}}
	d, err := newDevice(device.Options{ID: id, StateDir: dir, Server: srv.URL(), Password: password,
		RebootDelay: time.Millisecond, BootTime: 10 * time.Millisecond, Extra: []shellyws.Option{shellywstest.FastBackoff()}}, hw)
	require.NoError(t, err)
	shellywstest.StartDevice(t, d)
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	return d, hw, c
}

func TestRelaysFollowTheServerAndTheInput(t *testing.T) {
	srv := shellywstest.NewServer(t)
	d, hw, c := start(t, srv, t.TempDir(), "")
	var res struct {
		WasOn bool `json:"was_on"`
	}
	c.CallT(t, "Switch.Set", map[string]any{"id": 1, "on": true}, &res)
	assert.False(t, res.WasOn)
	assert.JSONEq(t, `{"id":1,"output":true,"source":"WS_in"}`, string(c.ExpectStatusT(t).Changes["switch:1"]))
	assert.True(t, hw.relay(1), "the relay is driven")

	d.Input(0).SetState(true) // in_mode follow
	c.ExpectStatusT(t)
	assert.Contains(t, string(c.ExpectStatusT(t).Changes["switch:0"]), `"output":true`)
	assert.True(t, hw.relay(0))

	sample(d, hw)
	var sw struct {
		APower  float64 `json:"apower"`
		Current float64 `json:"current"`
	}
	c.CallT(t, "Switch.GetStatus", map[string]any{"id": 0}, &sw)
	assert.Equal(t, 100.0, sw.APower)
	assert.InDelta(t, 0.435, sw.Current, 0.001)
	var temp struct {
		TC float64 `json:"tC"`
	}
	c.CallT(t, "Temperature.GetStatus", map[string]any{"id": 0}, &temp)
	assert.Equal(t, 45.5, temp.TC)
}

func TestConfigSurvivesARebootAndARestart(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dir := t.TempDir()
	_, _, c := start(t, srv, dir, "")
	c.CallT(t, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"name": "Pump"}}, nil)
	c.ExpectStatusT(t)
	assert.Equal(t, "config_changed", c.ExpectEventT(t).Events[0].Event)
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 1}, nil)
	c2 := srv.AcceptT(t) // back after the boot time, a fresh NotifyFullStatus first
	c2.ExpectFullStatusT(t)
	var cfg struct{ Name string }
	c2.CallT(t, "Switch.GetConfig", map[string]any{"id": 0}, &cfg)
	assert.Equal(t, "Pump", cfg.Name)

	srv2 := shellywstest.NewServer(t) // a second process on the same directory
	_, _, c3 := start(t, srv2, dir, "")
	c3.CallT(t, "Switch.GetConfig", map[string]any{"id": 0}, &cfg)
	assert.Equal(t, "Pump", cfg.Name)
}

func TestThePasswordGuardsTheWebServer(t *testing.T) {
	srv := shellywstest.NewServer(t)
	d, _, _ := start(t, srv, t.TempDir(), "s3cret")
	web := httptest.NewServer(shellyws.NewHandler(d.Component()))
	t.Cleanup(web.Close)
	get := func(client *http.Client, path string) (int, string) {
		resp, err := client.Get(web.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, _ := get(http.DefaultClient, "/rpc/Switch.GetStatus?id=0")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body := get(http.DefaultClient, "/shelly")
	assert.Equal(t, http.StatusOK, code, "GET /shelly needs no password")
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	assert.Equal(t, id, info["id"])
	assert.Equal(t, true, info["auth_en"])
	client := &http.Client{Transport: &shellywstest.DigestTransport{Password: "s3cret"}}
	code, body = get(client, "/rpc/Switch.GetStatus?id=0")
	assert.Equal(t, http.StatusOK, code, body)
}
