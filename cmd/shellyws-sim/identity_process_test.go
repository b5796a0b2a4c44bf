//go:build unix

package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// TestIDPrefixPicksModel: -id shellypro4pm-… without -profile plays the Pro
// 4PM, and every place the device names itself says the same id: the src
// of its frames, Shelly.GetDeviceInfo on the outbound channel, GET /shelly,
// the realm of its digest challenge and sys.mac.
func TestIDPrefixPicksModel(t *testing.T) {
	const id = "shellypro4pm-f008d1d8b8b8"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-http", "127.0.0.1:0", "-password", "identity-pw")
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m := authCurlRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	base := m[1]

	c := srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, id, c.Src(), "src")
	assert.Contains(t, keysOf(fs.Status), "switch:3", "a Pro 4PM has four switches")
	var sys struct {
		MAC string `json:"mac"`
	}
	require.NoError(t, json.Unmarshal(fs.Status["sys"], &sys))
	assert.Equal(t, "F008D1D8B8B8", sys.MAC)

	var info device.DeviceInfo
	c.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
	assert.Equal(t, id, info.ID, "Shelly.GetDeviceInfo id")
	assert.Equal(t, "F008D1D8B8B8", info.MAC)
	assert.Equal(t, "SPSW-004PE16EU", info.Model)
	require.NotNil(t, info.AuthDomain)
	assert.Equal(t, id, *info.AuthDomain, "auth realm")

	r := httpDo(t, http.MethodGet, base+"/shelly", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	var shelly device.DeviceInfo
	require.NoError(t, json.Unmarshal([]byte(r.body), &shelly))
	assert.Equal(t, id, shelly.ID, "GET /shelly id")

	ctx := testCtx(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/rpc/Shelly.GetStatus", nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	ch, err := shellywstest.ParseWWWAuthenticate(resp.Header.Get("WWW-Authenticate"))
	require.NoError(t, err)
	assert.Equal(t, id, ch.Realm, "digest realm")
	p.stop(t)
}

// TestIDPrefixFleetKeepsPrefix: with -devices N the derived ids keep -id's
// prefix and model.
func TestIDPrefixFleetKeepsPrefix(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplusht-c0ffee0000a0", "-devices", "2", "-wakeup-period", "0")
	want := map[string]bool{"shellyplusht-c0ffee0000a0": true, "shellyplusht-c0ffee0000a1": true}
	for range 2 {
		c := srv.AcceptT(t)
		fs := c.ExpectFullStatusT(t)
		assert.True(t, want[c.Src()], c.Src())
		delete(want, c.Src())
		assert.Contains(t, keysOf(fs.Status), "humidity:0", "a Plus H&T")
		var info device.DeviceInfo
		c.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
		assert.Equal(t, c.Src(), info.ID)
	}
	assert.Empty(t, want)
	p.stop(t)
}

// TestIDPrefixUsageErrors: a prefix no profile has, or a -profile whose
// prefix is not -id's, exits 2 naming the prefixes that fit.
func TestIDPrefixUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msgs []string
	}{
		{[]string{"-server", "ws://127.0.0.1:1/", "-id", "shellynosuch-f008d1d8b8b8"},
			[]string{`-id "shellynosuch-f008d1d8b8b8"`, "no profile has ids shellynosuch-", "shellypro4pm", "shellyplus1pm", "-profile help"}},
		{[]string{"-server", "ws://127.0.0.1:1/", "-id", "shellypro4pm-f008d1d8b8b8", "-profile", "plus1pm-gen2"},
			[]string{`-id "shellypro4pm-f008d1d8b8b8"`, "plus1pm-gen2", "shellyplus1pm-f008d1d8b8b8", "pro4pm-gen2"}},
		{[]string{"-server", "ws://127.0.0.1:1/", "-id", "shellyplus1pm-f008d1d8b8b8", "-profile", "walldisplay-gen2"},
			[]string{"ShellyWallDisplay-F008D1D8B8B8"}},
		{[]string{"-id", "shellypro4pm-f008d1d8b8b8"}, []string{"the demo plays a Plus 1PM", "shellyplus1pm-f008d1d8b8b8"}},
	} {
		p := startSimulator(t, tc.args...)
		assert.Equal(t, 2, p.exitCode(t, waitTimeout), "%v", tc.args)
		out := p.out.String()
		for _, msg := range tc.msgs {
			assert.Contains(t, out, msg, "%v", tc.args)
		}
		assert.Equal(t, 1, strings.Count(out, "simulator: "), "one error line: %s", out)
	}
}

// keysOf returns a status's component keys, sorted, for short failure
// messages.
func keysOf(m map[string]json.RawMessage) []string {
	return slices.Sorted(maps.Keys(m))
}
