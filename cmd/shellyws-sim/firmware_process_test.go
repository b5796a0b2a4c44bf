//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/shellywstest"
)

// TestUpdateFlags: a simulator run with -update-stable 9.9.9 -ota-time 1s
// takes Shelly.Update from a server, sends the ota events and comes back
// with ver 9.9.9 after the reboot; with -state the new version survives a
// restart of the process.
func TestUpdateFlags(t *testing.T) {
	const id = "shellyplus1pm-aabbccdd0020"
	srv := shellywstest.NewServer(t)
	dir := t.TempDir()
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-state", dir,
		"-update-stable", "9.9.9", "-ota-time", "1s", "-boot-time", "200ms")
	c := srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	assert.Contains(t, string(fs.Status["sys"]), `"available_updates":{"stable":{"version":"9.9.9"},"beta":{"version":"1.2.0-beta1"}}`)
	var res json.RawMessage
	c.CallT(t, "Shelly.Update", map[string]any{"stage": "stable"}, &res)
	assert.Equal(t, "null", string(res))

	// The events until the reboot drops the connection.
	var events []string
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		f, err := c.Next(ctx)
		if errors.Is(err, shellywstest.ErrConnClosed) {
			break
		}
		require.NoError(t, err)
		if f.Method != shellywstest.MethodNotifyEvent {
			continue
		}
		var p struct {
			Events []struct {
				Event string `json:"event"`
			} `json:"events"`
		}
		require.NoError(t, json.Unmarshal(f.Params, &p))
		for _, e := range p.Events {
			events = append(events, e.Event)
		}
	}
	require.NotEmpty(t, events)
	assert.Equal(t, "ota_begin", events[0])
	assert.Contains(t, events, "ota_progress")
	assert.Equal(t, []string{"ota_success", "scheduled_restart"}, events[len(events)-2:])

	c = srv.AcceptT(t)
	fs = c.ExpectFullStatusT(t)
	assert.Contains(t, string(fs.Status["sys"]), `"available_updates":{"beta":{"version":"1.2.0-beta1"}}`)
	var info map[string]any
	c.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
	assert.Equal(t, "9.9.9", info["ver"])
	assert.Regexp(t, `^\d{8}-\d{6}/9\.9\.9-gsim0000$`, info["fw_id"])
	p.stop(t)

	state, err := os.ReadFile(filepath.Join(dir, id+".state.json"))
	require.NoError(t, err)
	assert.Contains(t, string(state), `"firmware":{"ver":"9.9.9"`)

	// A new process, without the flag: the installed version, and the
	// dump's offer.
	p = startSimulator(t, "-id", id, "-state", dir)
	c = srv.AcceptT(t)
	fs = c.ExpectFullStatusT(t)
	assert.Contains(t, string(fs.Status["sys"]), `"available_updates":{"beta":{"version":"1.2.0-beta1"}}`)
	var info2 map[string]any
	c.CallT(t, "Shelly.GetDeviceInfo", nil, &info2)
	assert.Equal(t, "9.9.9", info2["ver"])
	assert.Equal(t, info["fw_id"], info2["fw_id"])
	var sysCfg map[string]any
	c.CallT(t, "Sys.GetConfig", nil, &sysCfg)
	assert.Equal(t, info["fw_id"], sysCfg["device"].(map[string]any)["fw_id"])
	p.stop(t)
}
