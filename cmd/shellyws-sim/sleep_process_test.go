//go:build unix

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/shellywstest"
)

// expectSleepFrames reads the sleep event and the close with 1000 that end
// a wake.
func expectSleepFrames(t *testing.T, c *shellywstest.Conn) {
	t.Helper()
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "sleep", ev.Events[0].Event)
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the wake's connection stayed up")
	}
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(c.Err()), "%v", c.Err())
}

func sysOf(t *testing.T, fs *shellywstest.FullStatus) map[string]any {
	t.Helper()
	var sys map[string]any
	require.NoError(t, json.Unmarshal(fs.Status["sys"], &sys))
	return sys
}

// TestSleepingDevice runs a Plus H&T with a short cycle: the wake's frames
// in order, the -http server refusing connections while it sleeps and
// answering while it is awake, the next wake a period later.
func TestSleepingDevice(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplusht-aabbccdd0020", "-profile", "plusht-gen2",
		"-wakeup-period", "400ms", "-awake-idle", "300ms", "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	addr := strings.TrimPrefix(base, "http://")

	c := srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	sys := sysOf(t, fs)
	assert.EqualValues(t, 1, sys["wakeup_period"], "400ms in whole seconds, at least 1")
	assert.Equal(t, map[string]any{"boot": "poweron", "cause": "undefined"}, sys["wakeup_reason"])
	assert.Nil(t, sys["unixtime"])
	// Awake: its web server answers, and a request keeps it awake.
	r := httpDo(t, http.MethodGet, base+"/rpc/Shelly.GetDeviceInfo", "")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `"id":"shellyplusht-aabbccdd0020"`)
	expectSleepFrames(t, c)
	p.out.waitFor(t, "next wake in 400ms")

	waitDial(t, addr, syscall.ECONNREFUSED) // asleep: refused
	assert.Equal(t, 1, srv.Handshakes(), "nothing dialled while asleep")

	c2 := srv.AcceptT(t)
	fs2 := c2.ExpectFullStatusT(t)
	assert.Equal(t, map[string]any{"boot": "deepsleep_wake", "cause": "periodic"}, sysOf(t, fs2)["wakeup_reason"])
	r = httpDo(t, http.MethodGet, base+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusOK, r.status, "awake again: its web server answers")
	assert.Contains(t, r.body, `"enable":true`)
	expectSleepFrames(t, c2)
	p.stop(t)
}

// TestSleepingHomeAssistantSetup plays Home Assistant's set-up of a
// sleeping device that is awake and pointed at a dead server: over the
// device's own websocket it reads the device info and config, then
// Ws.SetConfig to its URL and Shelly.Reboot with a delay longer than the
// idle time. The device stays awake until the reboot fires and then
// reaches the new server.
func TestSleepingHomeAssistantSetup(t *testing.T) {
	dead := shellywstest.NewServer(t)
	deadURL := dead.URL()
	dead.Close()
	hass := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/ws"))
	p := startSimulator(t, "-server", deadURL, "-id", "shellyplusht-aabbccdd0021", "-profile", "plusht-gen2",
		"-wakeup-period", "1h", "-awake-idle", "1s", "-boot-time", "200ms", "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	p.out.waitFor(t, "awake (wakeup_reason poweron")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/rpc", nil)
	require.NoError(t, err, "the device answers while awake, its server dead")
	defer ws.CloseNow()
	callWS := func(id int, method string, params any) map[string]any {
		t.Helper()
		req := map[string]any{"id": id, "src": "aios-1", "method": method}
		if params != nil {
			req["params"] = params
		}
		require.NoError(t, wsjson.Write(ctx, ws, req))
		for {
			// Notifications (config_changed after Ws.SetConfig) come to
			// the client too: read on to the answer.
			var resp map[string]any
			require.NoError(t, wsjson.Read(ctx, ws, &resp))
			if resp["id"] == float64(id) {
				require.NotContains(t, resp, "error", "%s", method)
				return resp
			}
		}
	}
	info := callWS(1, "Shelly.GetDeviceInfo", nil)["result"].(map[string]any)
	assert.Equal(t, "shellyplusht-aabbccdd0021", info["id"])
	cfg := callWS(2, "Shelly.GetConfig", nil)["result"].(map[string]any)
	assert.Contains(t, cfg, "ws")
	res := callWS(3, "Ws.SetConfig", map[string]any{"config": map[string]any{"enable": true, "server": hass.URL(), "ssl_ca": "*"}})
	assert.Equal(t, map[string]any{"restart_required": true}, res["result"])
	start := time.Now()
	res = callWS(4, "Shelly.Reboot", map[string]any{"delay_ms": 2500})
	assert.Nil(t, res["result"])

	c := hass.AcceptT(t)
	assert.GreaterOrEqual(t, time.Since(start), 2500*time.Millisecond, "awake until the reboot, past the 1 s idle time")
	assert.NotContains(t, p.out.String(), "asleep after", "no sleep before the reboot")
	fs := c.ExpectFullStatusT(t)
	sys := sysOf(t, fs)
	assert.Equal(t, map[string]any{"boot": "software_restart", "cause": "undefined"}, sys["wakeup_reason"])
	assert.EqualValues(t, 3600, sys["wakeup_period"])
	p.stop(t)
}

// TestSleepingFleetSpreadsFirstWakes: -devices N with a sleeping model
// spreads the first wakes over the period instead of waking in lock-step.
func TestSleepingFleetSpreadsFirstWakes(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplusht-aabbccdd0100", "-profile", "plusht-gen2",
		"-devices", "5", "-wakeup-period", "2s", "-awake-idle", "100ms")
	ids := map[string]bool{}
	for range 5 {
		c := srv.AcceptT(t)
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		ids[c.ExpectFullStatusT(t).Src] = true
	}
	assert.Len(t, ids, 5, "five distinct devices")
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(at); i++ {
		assert.Greater(t, at[i].Sub(at[i-1]), 150*time.Millisecond, "wake %d too close to the one before (evenly 400 ms apart)", i)
	}
	p.stop(t)
}

// TestSleepingMetrics: the devices gauge counts sleeping devices as
// "asleep", before their first wake too.
func TestSleepingMetrics(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplusht-aabbccdd0200", "-profile", "plusht-gen2",
		"-devices", "3", "-wakeup-period", "1h", "-awake-idle", "200ms", "-metrics", "127.0.0.1:0")
	p.out.waitFor(t, "/debug/pprof/\n")
	match := regexp.MustCompile(`metrics on (http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(p.out.String())
	require.NotNil(t, match, p.out.String())
	// Device 0 wakes at once; 1 and 2 at 20 and 40 minutes.
	srv.AcceptT(t).ExpectFullStatusT(t)
	m := waitMetric(t, match[1], `shellyws_sim_devices{state="asleep"}`, 3)
	assert.Equal(t, 0.0, m[`shellyws_sim_devices{state="connected"}`])
	assert.Equal(t, 0.0, m[`shellyws_sim_devices{state="disconnected"}`])
	assert.Equal(t, 1.0, m["shellyws_sim_connects_total"])
	p.stop(t)
}
