package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

func TestParseFlags(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, testCAPEM(t), 0o600))
	notPEM := filepath.Join(t.TempDir(), "x.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	s, err := parseFlags(nil)
	require.NoError(t, err)
	assert.True(t, s.demo())
	assert.Equal(t, 1, s.devices)

	s, err = parseFlags([]string{"-id", "shellyplus1pm-aabbccddeeff", "-v"})
	require.NoError(t, err)
	assert.True(t, s.demo(), "-id and -v keep the demo")

	s, err = parseFlags([]string{"-server", "wss://fm.example/shelly?token=x", "-ssl-ca", ""})
	require.NoError(t, err)
	assert.False(t, s.demo())
	assert.Nil(t, s.sslCA, "'' is null")
	assert.True(t, s.sslCASet)

	s, err = parseFlags([]string{"-server", "wss://h/", "-ssl-ca", "user_ca.pem", "-user-ca", caFile, "-devices", "10"})
	require.NoError(t, err)
	assert.Equal(t, "user_ca.pem", *s.sslCA)
	assert.Equal(t, 10, s.devices)

	s, err = parseFlags([]string{"-state", t.TempDir()})
	require.NoError(t, err)
	assert.False(t, s.demo())
	assert.Empty(t, s.httpAddr, "-http is off by default")
	require.Len(t, s.profiles, 1)
	assert.Equal(t, "plus1pm-gen2", s.profiles[0].Name, "the default profile")
	assert.False(t, s.profileSet)
	assert.Zero(t, s.telemetry, "telemetry is off by default")
	assert.Equal(t, time.Second, s.bootTime)

	dump := filepath.Join(t.TempDir(), "my.json")
	raw, err := os.ReadFile(filepath.Join("..", "..", "device", "profile", "dumps", "plus1-gen2.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dump, raw, 0o600))
	s, err = parseFlags([]string{"-server", "ws://h", "-profile", "pro3em-gen2, walldisplay-gen2," + dump,
		"-telemetry", "5s", "-boot-time", "250ms"})
	require.NoError(t, err)
	require.Len(t, s.profiles, 3)
	assert.Equal(t, "SPEM-003CEBEU", s.profiles[0].Model)
	assert.Equal(t, "ShellyWallDisplay", s.profiles[1].IDPrefix)
	assert.Equal(t, "shellyplus1", s.profiles[2].IDPrefix)
	assert.True(t, s.profileSet)
	assert.Equal(t, 5*time.Second, s.telemetry)
	assert.Equal(t, 250*time.Millisecond, s.bootTime)

	s, err = parseFlags([]string{"-server", "ws://h", "-profile", "plusht-gen2"})
	require.NoError(t, err)
	assert.Zero(t, s.wakeupPeriod, "the model's period")
	assert.Equal(t, 3*time.Second, s.awakeIdle)
	assert.Equal(t, 60*time.Second, s.awakeMax)
	s, err = parseFlags([]string{"-server", "ws://h", "-profile", "plusht-gen2", "-wakeup-period", "0", "-awake-idle", "500ms", "-awake-max", "10s"})
	require.NoError(t, err)
	assert.Negative(t, s.wakeupPeriod, "-wakeup-period 0: always on")
	assert.Equal(t, 500*time.Millisecond, s.awakeIdle)
	assert.Equal(t, 10*time.Second, s.awakeMax)
	s, err = parseFlags([]string{"-server", "ws://h", "-profile", "plus1pm-gen2,plusht-gen2", "-wakeup-period", "2h"})
	require.NoError(t, err)
	assert.Equal(t, 2*time.Hour, s.wakeupPeriod)
	assert.Equal(t, 2*time.Hour, s.wakeupFor(s.profiles[1]), "the H&T sleeps with -wakeup-period")
	assert.Zero(t, s.wakeupFor(s.profiles[0]), "the relay stays on")
	s, err = parseFlags([]string{"-server", "ws://h", "-id", "shellyplusht-0000000000ff", "-wakeup-period", "20s"})
	require.NoError(t, err, "-id's prefix picks a model that sleeps")
	assert.Equal(t, 20*time.Second, s.wakeupFor(s.profiles[0]))

	for _, addr := range []string{"127.0.0.1:8080", ":8080", "[::1]:0", "localhost:65535"} {
		s, err = parseFlags([]string{"-server", "ws://h", "-http", addr})
		require.NoError(t, err, addr)
		assert.Equal(t, addr, s.httpAddr)
	}
	s, err = parseFlags([]string{"-server", "ws://h", "-http", "127.0.0.1:65534", "-devices", "2"})
	require.NoError(t, err, "ports 65534 and 65535")
	assert.Equal(t, 2, s.devices)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-ssl-ca", "bogus"}, `-ssl-ca "bogus"`},
		{[]string{"-server", "http://x"}, "must start with ws:// or wss://"},
		{[]string{"-server", "ws://"}, "has no host"},
		{[]string{"-server", "ws://h", "-devices", "0"}, "-devices 0"},
		{[]string{"-server", "ws://h", "-devices", "x"}, "invalid value"},
		{[]string{"-devices", "3"}, "-devices needs -server or -state"},
		{[]string{"-ssl-ca", "*"}, "-ssl-ca needs -server or -state"},
		{[]string{"-id", "nope"}, "-id"},
		{[]string{"-id", "shellyplus1pm-AABBCCDDEEFF"}, "lowercase"},
		{[]string{"-server", "ws://h", "-ssl-ca", "user_ca.pem"}, "needs -user-ca"},
		{[]string{"-server", "ws://h", "-user-ca", filepath.Join(t.TempDir(), "missing.pem")}, "-user-ca"},
		{[]string{"-server", "ws://h", "-user-ca", notPEM}, "no PEM certificate"},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"-server", "ws://h", "-http", "8080"}, "want HOST:PORT"},
		{[]string{"-server", "ws://h", "-http", ""}, "want HOST:PORT"},
		{[]string{"-server", "ws://h", "-http", "127.0.0.1:http"}, `port "http" is not a number`},
		{[]string{"-server", "ws://h", "-http", "127.0.0.1:65536"}, "0 to 65535"},
		{[]string{"-server", "ws://h", "-http", "127.0.0.1:65535", "-devices", "2"}, "port 65536 does not exist"},
		{[]string{"-http", "127.0.0.1:8080"}, "-http needs -server or -state"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"-server", "ws://h", "-profile", "nosuch-gen9"}, `no built-in profile "nosuch-gen9"`},
		{[]string{"-server", "ws://h", "-profile", "plus1pm-gen2,"}, `-profile ""`},
		{[]string{"-server", "ws://h", "-profile", "./missing.json"}, "no such file"},
		{[]string{"-server", "ws://h", "-profile", notPEM}, "not valid JSON"},
		{[]string{"-server", "ws://h", "-telemetry", "1ms"}, "-telemetry 1ms: want 100ms to 24h0m0s"},
		{[]string{"-server", "ws://h", "-telemetry", "soon"}, "invalid value"},
		{[]string{"-server", "ws://h", "-boot-time", "0s"}, "-boot-time 0s"},
		{[]string{"-server", "ws://h", "-boot-time", "1h"}, "at most 10m0s"},
		{[]string{"-server", "ws://h", "-wakeup-period", "-1s"}, "-wakeup-period -1s: want 0 (always on) to 168h0m0s"},
		{[]string{"-server", "ws://h", "-awake-idle", "0s"}, "-awake-idle 0s"},
		{[]string{"-server", "ws://h", "-awake-max", "2h"}, "-awake-max 2h0m0s: want more than 0 and at most 1h0m0s"},
		{[]string{"-wakeup-period", "10s"}, "-wakeup-period needs -server or -state"},
		{[]string{"-server", "ws://h", "-wakeup-period", "10s"}, "-wakeup-period: none of the profiles sleeps (plus1pm-gen2)"},
		{[]string{"-server", "ws://h", "-id", "shellyfoo-0000000000ff"}, "no profile has ids shellyfoo-<MAC>"},
		{[]string{"-server", "ws://h", "-id", "shellypro4pm-0000000000ff", "-profile", "pro3em-gen2"}, "give -id shellypro3em-0000000000ff"},
		{[]string{"-server", "ws://h", "-id", "ShellyWallDisplay-0000000000ff"}, "ShellyWallDisplay-0000000000FF"},
		{[]string{"-profile", "pro3em-gen2"}, "-profile needs -server or -state"},
		{[]string{"-telemetry", "10s"}, "-telemetry needs -server or -state"},
	} {
		_, err := parseFlags(tc.args)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.msg, "%v", tc.args)

		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(tc.args, &stdout, &stderr), "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.msg)
		assert.Empty(t, stdout.String())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	for _, flag := range []string{"-server URL", "-id ID", "-ssl-ca VALUE", "-user-ca FILE", "-state DIR", "-devices N",
		"-http ADDR", "-v ", "-profile LIST", "-telemetry DUR", "-boot-time DUR", "-wakeup-period DUR", "-awake-idle DUR", "-awake-max DUR", "Sim.Input"} {
		assert.Contains(t, stdout.String(), flag)
	}
	assert.True(t, strings.HasPrefix(stdout.String(), "Usage: simulator"))
}

func TestProfileHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-profile", "help"}, &stdout, &stderr))
	assert.Empty(t, stderr.String())
	out := stdout.String()
	for _, name := range profile.Names() {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(name)+` +`+regexp.QuoteMeta(p.Model)+` `, out)
	}
	assert.Contains(t, out, "walldisplay-gen2")
	assert.Contains(t, out, "ShellyWallDisplay-XXXXXXXXXXXX")
	assert.Contains(t, out, "Default: plus1pm-gen2")
}

func TestDeviceIDs(t *testing.T) {
	s, err := parseFlags([]string{"-server", "ws://h", "-profile", "pro3em-gen2,walldisplay-gen2", "-id", "shellypro3em-0000000000ff"})
	require.NoError(t, err)
	assert.Equal(t, "shellypro3em-0000000000ff", deviceID(s.id, s.profiles[0], 0))
	assert.Equal(t, "ShellyWallDisplay-000000000100", deviceID(s.id, s.profiles[1], 1))
	s, err = parseFlags([]string{"-server", "ws://h", "-id", "shellypro4pm-0000000000ff"})
	require.NoError(t, err)
	require.Len(t, s.profiles, 1)
	assert.Equal(t, "pro4pm-gen2", s.profiles[0].Name, "without -profile the prefix picks the model")
	assert.Equal(t, "shellypro4pm-000000000100", deviceID(s.id, s.profiles[0], 1))
	s, err = parseFlags([]string{"-server", "ws://h", "-id", "ShellyWallDisplay-0000000000FF"})
	require.NoError(t, err)
	assert.Equal(t, "walldisplay-gen2", s.profiles[0].Name)
	assert.Equal(t, "ShellyWallDisplay-000000000100", deviceID(s.id, s.profiles[0], 1))
}

func TestDeviceHTTPAddr(t *testing.T) {
	assert.Equal(t, "127.0.0.1:8080", deviceHTTPAddr("127.0.0.1:8080", 0))
	assert.Equal(t, "127.0.0.1:8082", deviceHTTPAddr("127.0.0.1:8080", 2))
	assert.Equal(t, ":8081", deviceHTTPAddr(":8080", 1))
	assert.Equal(t, "[::1]:8081", deviceHTTPAddr("[::1]:8080", 1))
	assert.Equal(t, "127.0.0.1:0", deviceHTTPAddr("127.0.0.1:0", 5), "port 0: a free port each")
}

// TestServeInbound runs the -http server in process: the URL to print,
// a request, and a clean close with nothing left running (goleak).
func TestServeInbound(t *testing.T) {
	d, err := device.New(withModel(device.Options{ID: "shellyplus1pm-0a0b0c0d0e0f"}))
	require.NoError(t, err)
	for _, addr := range []string{"127.0.0.1:0", ":0", "0.0.0.0:0"} {
		in, err := serveInbound(addr, d, slog.New(slog.DiscardHandler))
		require.NoError(t, err, addr)
		assert.Regexp(t, `^http://127\.0\.0\.1:[1-9][0-9]*$`, in.URL(), "%s is reached on loopback", addr)

		client := &http.Client{Transport: &http.Transport{}, Timeout: waitTimeout}
		resp, err := client.Get(in.URL() + "/rpc/Ws.GetStatus")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		assert.JSONEq(t, `{"connected":false}`, string(body), "not running, so not connected")
		client.CloseIdleConnections()

		require.NoError(t, in.close())
		_, err = client.Get(in.URL() + "/shelly")
		assert.Error(t, err, "closed")
	}
}

func TestDescribe(t *testing.T) {
	assert.Equal(t, "no error", describe(nil))
	assert.Equal(t, "connection refused", describe(wrapErrno()))
}

// testCAPEM returns a fresh self-signed CA certificate in PEM.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "simulator test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func wrapErrno() error {
	return fmt.Errorf("shellyws: dial ws://127.0.0.1:1/: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
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
