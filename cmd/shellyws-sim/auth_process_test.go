//go:build unix

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

var authCurlRe = regexp.MustCompile(`  curl --digest -u 'admin:<password>' '(http://127\.0\.0\.1:[0-9]+)/rpc/Ws.GetConfig'\n`)

// digestGet GETs url with DigestTransport (password "" sends no
// credentials) and returns status and body.
func digestGet(t *testing.T, url, password string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var rt http.RoundTripper = &http.Transport{DisableKeepAlives: true}
	if password != "" {
		rt = &shellywstest.DigestTransport{Password: password, Base: rt}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestPasswordFlag: -password turns authentication on for the -http
// channels (the outbound one stays open), survives a restart with -state,
// and an empty -password turns it off again.
func TestPasswordFlag(t *testing.T) {
	const id = "shellyplus1pm-a1b2c3d4e5f6"
	srv := shellywstest.NewServer(t)
	dir := t.TempDir()
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-http", "127.0.0.1:0", "-state", dir, "-password", "pw1")
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m := authCurlRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	base := m[1]
	assert.NotContains(t, p.out.String(), "pw1", "the password is never printed")
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)

	status, _ := digestGet(t, base+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = digestGet(t, base+"/rpc/Ws.GetConfig", "wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := digestGet(t, base+"/rpc/Ws.GetConfig", "pw1")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = digestGet(t, base+"/shelly", "")
	require.Equal(t, http.StatusOK, status)
	var info device.DeviceInfo
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	assert.True(t, info.AuthEn)
	require.NotNil(t, info.AuthDomain)
	assert.Equal(t, id, *info.AuthDomain)
	// The outbound channel is never challenged.
	var st map[string]any
	c.CallT(t, "Ws.GetStatus", nil, &st)
	assert.Equal(t, true, st["connected"])
	p.stop(t)

	data, err := os.ReadFile(filepath.Join(dir, id+".auth.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"enable":true,"realm":"`+id+`","ha1":"`+shellyws.ComputeHA1(id, "pw1")+`"}`, string(data))

	// Restarted without -password: still on, from the state directory.
	p = startSimulator(t, "-id", id, "-http", "127.0.0.1:0", "-state", dir)
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m = authCurlRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	srv.AcceptT(t).ExpectFullStatusT(t)
	status, _ = digestGet(t, m[1]+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = digestGet(t, m[1]+"/rpc/Ws.GetConfig", "pw1")
	assert.Equal(t, http.StatusOK, status)
	p.stop(t)

	// -password '' turns it off, and that is saved too.
	p = startSimulator(t, "-id", id, "-http", "127.0.0.1:0", "-state", dir, "-password", "")
	base = inboundURL(t, p)
	srv.AcceptT(t).ExpectFullStatusT(t)
	status, _ = digestGet(t, base+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusOK, status)
	p.stop(t)
	data, err = os.ReadFile(filepath.Join(dir, id+".auth.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"enable":false}`, string(data))
}

// TestPasswordFlagDevices: every device gets the password, in its own realm.
func TestPasswordFlagDevices(t *testing.T) {
	const base = "shellyplus1pm-c0ffee000020"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-devices", "2", "-id", base, "-http", "127.0.0.1:0", "-password", "fleet")
	p.out.waitFor(t, "simulator: each serves")
	m := inboundOfRe.FindAllStringSubmatch(p.out.String(), -1)
	require.Len(t, m, 2, p.out.String())
	for _, sub := range m {
		status, body := digestGet(t, sub[2]+"/shelly", "")
		require.Equal(t, http.StatusOK, status)
		var info device.DeviceInfo
		require.NoError(t, json.Unmarshal([]byte(body), &info))
		require.NotNil(t, info.AuthDomain)
		assert.Equal(t, sub[1], *info.AuthDomain, "each device is its own realm")
		status, _ = digestGet(t, sub[2]+"/rpc/Ws.GetStatus", "")
		assert.Equal(t, http.StatusUnauthorized, status)
		status, _ = digestGet(t, sub[2]+"/rpc/Ws.GetStatus", "fleet")
		assert.Equal(t, http.StatusOK, status)
	}
	for range 2 {
		srv.AcceptT(t).ExpectFullStatusT(t)
	}
	p.stop(t)
}
