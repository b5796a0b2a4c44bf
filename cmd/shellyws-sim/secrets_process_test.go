//go:build unix

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// The secrets the process tests plant; no line the simulator prints, at
// any level, may hold one.
const (
	leakPassword  = "pw-LEAK-pw"
	leakPassword2 = "pw2-LEAK-pw2"
	leakToken     = "TokLEAKtok0123456789abcdefghijklmnopqrstuvw" // 43 chars, as Home Assistant's remote_key
	leakToken2    = "Tok2LEAKtok2"
	leakUser      = "usr-LEAK-usr"
	leakUserPass  = "up-LEAK-up"
)

// assertNothingLeaks greps every line of the simulator's output for every
// planted secret and the ha1s of the planted passwords for ids.
func assertNothingLeaks(t *testing.T, out string, ids ...string) {
	t.Helper()
	secrets := []string{leakPassword, leakPassword2, leakToken, leakToken2, leakUser, leakUserPass, "LEAK"}
	for _, id := range ids {
		secrets = append(secrets, shellyws.ComputeHA1(id, leakPassword), shellyws.ComputeHA1(id, leakPassword2))
	}
	for i, line := range strings.Split(out, "\n") {
		for _, s := range secrets {
			assert.NotContains(t, line, s, "output line %d leaks a secret", i+1)
		}
	}
}

// leakURL is a server URL with a token in its user info and its query.
func leakURL(addr string) string {
	return "ws://" + leakUser + ":" + leakUserPass + "@" + addr + "/api/shelly/remote?remote_key=" + leakToken
}

// TestSecretsNeverPrinted runs the simulator with -v, a server URL with a
// token, -password, and a server that sets another password with
// Shelly.SetAuth and moves the device with Ws.SetConfig to a URL with
// another token; LAN clients use right and wrong passwords. Nothing it
// prints holds a secret.
func TestSecretsNeverPrinted(t *testing.T) {
	const id = "shellyplus1pm-a1b2c3d4e5f7"
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/remote"))
	p := startSimulator(t, "-v", "-server", leakURL(srv.Addr()), "-id", id, "-http", "127.0.0.1:0",
		"-password", leakPassword, "-state", t.TempDir(), "-metrics", "127.0.0.1:0")
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m := authCurlRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	base := m[1]
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)

	status, _ := digestGet(t, base+"/rpc/Ws.GetConfig", "wrong-LEAK")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = digestGet(t, base+"/rpc/Ws.GetConfig", leakPassword)
	assert.Equal(t, http.StatusOK, status)

	c.CallT(t, shellyws.SetAuthMethod, map[string]any{"user": "admin", "realm": id, "ha1": shellyws.ComputeHA1(id, leakPassword2)}, nil)
	status, _ = digestGet(t, base+"/rpc/Ws.GetStatus", leakPassword2)
	assert.Equal(t, http.StatusOK, status)
	moved := "wss://" + leakUser + "@fm.example/shelly?token=" + leakToken2
	c.CallT(t, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": moved}}, nil)
	p.out.waitFor(t, "<- Ws.SetConfig")
	metricsURL := regexp.MustCompile(`metrics on (\S+/metrics)`).FindStringSubmatch(p.out.String())
	require.NotNil(t, metricsURL, p.out.String())
	status, metrics := digestGet(t, metricsURL[1], "")
	require.Equal(t, http.StatusOK, status)
	assertNothingLeaks(t, metrics, id) // labels and values
	p.stop(t)

	out := p.out.String()
	assertNothingLeaks(t, out, id)
	assert.Contains(t, out, "<- Shelly.SetAuth", "the call is shown")
	assert.Contains(t, out, `"ha1":"REDACTED"`, "its ha1 masked")
	assert.Contains(t, out, "remote_key=REDACTED", "the server is named, its token masked")
	assert.Contains(t, out, "level=DEBUG", "-v logged")
}

// TestSecretsNeverPrintedBySleeper: a sleeping model (-v) whose server
// closes its wake's connection with 1008, as Home Assistant's remote
// endpoint does to a device it cannot identify, and whose next wake's dial
// fails, prints both without the server URL's secrets.
func TestSecretsNeverPrintedBySleeper(t *testing.T) {
	const id = "shellyplusht-aabbccdd0021"
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/remote"))
	p := startSimulator(t, "-v", "-server", leakURL(srv.Addr()), "-id", id, "-profile", "plusht-gen2",
		"-awake-idle", "100ms", "-wakeup-period", "1s")
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	require.NoError(t, c.Close(websocket.StatusPolicyViolation, "identify failed"))
	p.out.waitFor(t, "next wake in")
	srv.Stop()
	p.out.waitFor(t, "no connection in 2 dial(s)")
	p.stop(t)
	out := p.out.String()
	assertNothingLeaks(t, out, id)
	assert.Contains(t, out, "level=WARN", "the lost connection and the failed dial are logged")
}

// TestSecretsNeverInUsageErrors: a bad -server is refused without echoing
// its secrets.
func TestSecretsNeverInUsageErrors(t *testing.T) {
	p := startSimulator(t, "-server", "http://"+leakUser+":"+leakUserPass+"@h/x?remote_key="+leakToken)
	assert.Equal(t, 2, p.exitCode(t, waitTimeout))
	out := p.out.String()
	assertNothingLeaks(t, out)
	assert.Contains(t, out, "-server")
}

// TestPasswordFileKeepsThePasswordOutOfPs: with -password-file the
// password is not on the command line other users see, and it works.
func TestPasswordFileKeepsThePasswordOutOfPs(t *testing.T) {
	const id = "shellyplus1pm-a1b2c3d4e5f8"
	file := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(file, []byte(leakPassword+"\n"), 0o600))
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-http", "127.0.0.1:0", "-password-file", file)
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m := authCurlRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	srv.AcceptT(t).ExpectFullStatusT(t)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	if err == nil { // Linux; ps reads the same
		assert.NotContains(t, string(cmdline), leakPassword)
		assert.Contains(t, string(cmdline), file)
	}
	status, _ := digestGet(t, m[1]+"/rpc/Ws.GetConfig", leakPassword)
	assert.Equal(t, http.StatusOK, status)
	status, _ = digestGet(t, m[1]+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	p.stop(t)
	assertNothingLeaks(t, p.out.String(), id)
}
