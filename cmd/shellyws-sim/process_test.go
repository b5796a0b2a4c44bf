//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// demoLimit is how long the demo may take, from the issue.
const demoLimit = 15 * time.Second

// proc is the simulator running as a process.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr
	done chan struct{}
	err  error // from Wait, valid after done
}

func startSimulator(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(simulatorBinary(t), args...))
}

// startCmd starts cmd, the simulator binary, with its output collected; the
// process is killed when the test ends.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	args := cmd.Args[1:]
	p := &proc{cmd: cmd, out: newSyncBuffer(), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("simulator %v output:\n%s", args, p.out.String())
		}
	})
	return p
}

// exitCode waits up to limit for the process to exit.
func (p *proc) exitCode(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("simulator still running after %v; output:\n%s", limit, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// stop sends SIGTERM and checks for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, p.exitCode(t, waitTimeout), "exit status after SIGTERM")
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func TestDemo(t *testing.T) {
	start := time.Now()
	p := startSimulator(t)
	require.Equal(t, 0, p.exitCode(t, demoLimit))
	t.Logf("demo took %v", time.Since(start))
	out := p.out.String()
	for _, want := range []string{
		"== listening ws://127.0.0.1:",
		"== connected 127.0.0.1:",
		"<- server call Shelly.GetDeviceInfo",
		`"model":"SNSW-001P16EU"`,
		"<- server call Ws.GetConfig",
		"<- server call Switch.Toggle",
		`{"was_on":false}`,
		`"switch:0":{"id":0,"output":true,"source":"WS_in"}`,
		"== stopped",
		"connection lost",
		"dial failed: connection refused; retrying in",
		"(attempt 3)",
		"== restarted ws://127.0.0.1:",
		"StatusGoingAway",
		`{"restart_required":true}`,
		`"events":[{"cfg_rev":36,"component":"ws","event":"config_changed"`,
		`"sys":{"cfg_rev":36,"restart_required":true}`,
		"go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080\n",
		"curl 'http://127.0.0.1:8080/rpc/Ws.GetConfig'\n",
		"<- server call Shelly.SetAuth",
		"curl --digest -u 'admin:<password>' 'http://127.0.0.1:", `"ha1":"REDACTED"`,
		`"auth_domain":"shellyplus1pm-`, `"auth_en":true`,
		"curl --digest -u admin:PASS 'http://127.0.0.1:8080/rpc/Ws.GetConfig'\n",
		"Done in",
	} {
		assert.Contains(t, out, want)
	}
	// The device opens both connections with its full status.
	assert.Equal(t, 2, strings.Count(out, ": NotifyFullStatus {"), out)
	// The toggle's delta, and cfg_rev after Ws.SetConfig over HTTP.
	assert.Equal(t, 2, strings.Count(out, ": NotifyStatus {"), out)

	// The curl lines name the demo's own web server, and its answers follow
	// them.
	m := regexp.MustCompile(`web server \(inbound HTTP, shellyws.Handler\) listens on (http://127\.0\.0\.1:\d+)\n`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	web := m[1]
	assert.Contains(t, out, "   $ curl '"+web+"/rpc/Ws.GetConfig'\n   {\"enable\":true,\"server\":\"ws://127.0.0.1:")
	assert.Contains(t, out, "   $ curl -g '"+web+`/rpc/Ws.SetConfig?config={"ssl_ca":"*"}'`+"\n   {\"restart_required\":true}\n")
	assert.Less(t, strings.Index(out, `{"restart_required":true}`), strings.Index(out, ": NotifyEvent {"),
		"the answer is printed before the notifications it causes")
	first := strings.Index(out, ": NotifyFullStatus {")
	assert.Less(t, first, strings.Index(out, "<- server call Shelly.GetDeviceInfo"))
}

func TestServerFlagAndSIGTERM(t *testing.T) {
	const id = "shellyplus1pm-aabbccddeeff"
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
	p := startSimulator(t, "-server", srv.URL()+"?token=secret", "-id", id)

	c := srv.AcceptT(t)
	assert.Equal(t, "/shelly?token=secret", c.RequestURI(), "the URL is dialled verbatim")
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, id, c.Src())
	var sys struct {
		MAC string `json:"mac"`
	}
	require.NoError(t, json.Unmarshal(fs.Status["sys"], &sys))
	assert.Equal(t, "AABBCCDDEEFF", sys.MAC)
	assert.JSONEq(t, `{"connected":true}`, string(fs.Status["ws"]))

	var cfg map[string]any
	c.CallT(t, "Ws.GetConfig", nil, &cfg)
	assert.Equal(t, map[string]any{"enable": true, "server": srv.URL() + "?token=secret", "ssl_ca": "ca.pem"}, cfg)
	p.out.waitFor(t, "<- Ws.GetConfig from shellywstest")
	assert.NotContains(t, p.out.String(), "secret", "the token stays out of the output")

	p.stop(t)
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the server never saw the connection end")
	}
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(c.Err()), "a clean close: %v", c.Err())
}

func TestSSLCAFlags(t *testing.T) {
	srv := shellywstest.NewTLSServer(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, srv.CACertPEM(), 0o600))

	t.Run("user_ca.pem connects", func(t *testing.T) {
		p := startSimulator(t, "-server", srv.URL(), "-ssl-ca", "user_ca.pem", "-user-ca", caFile)
		c := srv.AcceptT(t)
		c.ExpectFullStatusT(t)
		p.stop(t)
		<-c.Done()
	})

	t.Run("ca.pem keeps retrying", func(t *testing.T) {
		p := startSimulator(t, "-server", srv.URL(), "-ssl-ca", "ca.pem")
		// The test CA is not among the system roots: every dial fails, and
		// the device retries with backoff instead of giving up.
		p.out.waitFor(t, "(attempt 2)")
		assert.Contains(t, p.out.String(), "unknown authority")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := srv.Accept(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "no connection may come up")
		assert.True(t, p.running())
		p.stop(t)
	})

	t.Run("* connects without verification", func(t *testing.T) {
		p := startSimulator(t, "-server", srv.URL(), "-ssl-ca", "*")
		c := srv.AcceptT(t)
		c.ExpectFullStatusT(t)
		p.stop(t)
		<-c.Done()
	})
}

func TestStateSurvivesRestart(t *testing.T) {
	const id = "shellyplus1pm-0123456789ab"
	srv := shellywstest.NewServer(t)
	dir := t.TempDir()

	// First start: the flags are saved; the server changes ssl_ca.
	p := startSimulator(t, "-state", dir, "-server", srv.URL(), "-id", id)
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	var res map[string]any
	c.CallT(t, "Ws.SetConfig", map[string]any{"config": map[string]any{"ssl_ca": "*"}}, &res)
	assert.Equal(t, map[string]any{"restart_required": true}, res)
	p.stop(t)

	file := filepath.Join(dir, id+".ws.json")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var stored map[string]any
	require.NoError(t, json.Unmarshal(data, &stored))
	assert.Equal(t, map[string]any{"enable": true, "server": srv.URL(), "ssl_ca": "*"}, stored)

	// Second start without -server: the stored config is used as is.
	p = startSimulator(t, "-state", dir, "-id", id)
	c = srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	var cfg map[string]any
	c.CallT(t, "Ws.GetConfig", nil, &cfg)
	assert.Equal(t, stored, cfg)
	p.stop(t)

	// An explicit flag overrides the stored value, and is saved.
	p = startSimulator(t, "-state", dir, "-id", id, "-ssl-ca", "ca.pem")
	c = srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	c.CallT(t, "Ws.GetConfig", nil, &cfg)
	assert.Equal(t, "ca.pem", cfg["ssl_ca"])
	p.stop(t)
	data, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"ssl_ca":"ca.pem"`)
}

func TestStateKeepsGeneratedID(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dir := t.TempDir()
	p := startSimulator(t, "-state", dir, "-server", srv.URL())
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	first := c.Src()
	require.NoError(t, device.CheckID(first))
	p.stop(t)

	p = startSimulator(t, "-state", dir)
	c = srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	assert.Equal(t, first, c.Src(), "the same device after a restart")
	p.stop(t)
}

func TestDevicesFlag(t *testing.T) {
	const base = "shellyplus1pm-c0ffee000001"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-devices", "3", "-id", base)
	seen := map[string]bool{}
	var conns []*shellywstest.Conn
	for range 3 {
		c := srv.AcceptT(t)
		fs := c.ExpectFullStatusT(t)
		var sys struct {
			MAC string `json:"mac"`
		}
		require.NoError(t, json.Unmarshal(fs.Status["sys"], &sys))
		assert.Equal(t, device.MACFromID(c.Src()), sys.MAC)
		seen[c.Src()] = true
		conns = append(conns, c)
	}
	assert.Equal(t, map[string]bool{
		device.DeriveID(base, 0): true, device.DeriveID(base, 1): true, device.DeriveID(base, 2): true,
	}, seen)
	p.out.waitFor(t, "simulator: 3 devices")
	p.stop(t)
	for _, c := range conns {
		<-c.Done()
	}
	assert.Contains(t, p.out.String(), "devices 3: connected 0, connecting 0, disconnected 0, stopped 3")
}

func TestBadFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-ssl-ca", "bogus"}, `-ssl-ca "bogus"`},
		{[]string{"-server", "http://x"}, "must start with ws:// or wss://"},
		{[]string{"-state", t.TempDir()}, "no server to dial"},
		{[]string{"-server", "ws://h", "-http", "8080"}, "want HOST:PORT"},
		{[]string{"-http", "127.0.0.1:0"}, "-http needs -server or -state"},
	} {
		p := startSimulator(t, tc.args...)
		assert.Equal(t, 2, p.exitCode(t, waitTimeout), "%v", tc.args)
		assert.Contains(t, p.out.String(), tc.msg)
	}
}

// TestDevicesFlagThousand runs the simulator with -devices 1000 against one
// server: all 1,000 connect with distinct ids, and all come back, each with
// a fresh NotifyFullStatus, after the server restarts.
func TestDevicesFlagThousand(t *testing.T) {
	const n = 1000
	const fleetWait = 60 * time.Second // generous for -race on a loaded machine
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-devices", "1000")

	// collect accepts connections until it has seen n distinct devices send
	// their NotifyFullStatus; it accepts as they come, since the server
	// queues only so many unaccepted connections.
	collect := func(round string) map[string]bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), fleetWait)
		defer cancel()
		type seen struct {
			src string
			err error
		}
		results := make(chan seen, n)
		pending := 0
		srcs := map[string]bool{}
		for len(srcs) < n {
			for pending < n-len(srcs) {
				c, err := srv.Accept(ctx)
				require.NoError(t, err, "%s: %d of %d devices", round, len(srcs), n)
				pending++
				go func() {
					_, err := c.ExpectFullStatus(ctx)
					results <- seen{c.Src(), err}
				}()
			}
			r := <-results
			pending--
			if r.err == nil {
				srcs[r.src] = true
			}
		}
		for ; pending > 0; pending-- {
			<-results
		}
		return srcs
	}
	first := collect("connect")
	require.Len(t, first, n)

	ctx, cancel := context.WithTimeout(context.Background(), fleetWait)
	defer cancel()
	require.NoError(t, srv.Restart(ctx))
	second := collect("after restart")
	assert.Equal(t, first, second, "the same 1,000 devices came back")
	p.stop(t)
}
