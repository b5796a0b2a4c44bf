package shellyws_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// The secrets TestSecretsInNoOutput plants; no line of any output may hold
// one of them.
const (
	leakPassword = "pw-LEAK-pw"
	leakToken    = "TokLEAKtok0123456789abcdefghijklmnopqrstuvw" // 43 chars, as Home Assistant's remote_key
	leakUser     = "usr-LEAK-usr"
	leakUserPass = "up-LEAK-up"
)

// leakHA1 is the ha1 of leakPassword for the sleeper's id.
var leakHA1 = shellyws.ComputeHA1("shellyplusht-e86beae8ca14", leakPassword)

// assertNoSecret greps every line of out for every planted secret.
func assertNoSecret(t *testing.T, where, out string) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		for _, s := range []string{leakPassword, leakToken, leakUser, leakUserPass, leakHA1, "LEAK"} {
			assert.NotContains(t, line, s, "%s line %d leaks a secret", where, i+1)
		}
	}
}

// failingStore saves nothing: its error names a file, as FileStore's does.
type failingStore struct{ shellyws.ConfigStore }

func (failingStore) Save(shellyws.Config) error {
	return fmt.Errorf("shellyws: saving config file /var/lib/dev/LEAK-path/ws.json: %w", os.ErrPermission)
}

// TestSecretsInNoOutput: with a password, an ha1 and a URL token (in the
// query and in the user info) in play, nothing the library writes holds
// one: its log at debug level, the errors it returns and puts on the
// wire, and the test server's transcript. A sleeping device whose
// connection is lost or whose dial fails, Shelly.SetAuth over the outbound
// channel, the inbound channels with right and wrong passwords, and a
// config save that fails.
func TestSecretsInNoOutput(t *testing.T) {
	log, logs := secDebugLogger()
	transcript := &testkit.Buffer{}
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/remote"),
		shellywstest.WithLogf(func(format string, args ...any) { fmt.Fprintf(transcript, format+"\n", args...) }))
	server := "ws://" + leakUser + ":" + leakUserPass + "@" + srv.Addr() + "/api/shelly/remote?remote_key=" + leakToken
	c := newSleeper(t, enabledConfig(server), shellyws.WithLogger(log), shellyws.WithAwakeIdle(time.Second))
	base := serveInbound(t, c)

	// A wake: Shelly.SetAuth over the outbound channel, a config save that
	// fails, then the server drops the connection and is gone, so the
	// retry's dial fails.
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	conn.CallT(t, shellyws.SetAuthMethod, map[string]any{"user": "admin", "realm": c.ID(), "ha1": leakHA1}, nil)
	require.True(t, c.Auth().Enable)

	// Inbound: no credentials, a wrong password, the right one.
	for _, pw := range []string{"", "wrong-LEAK", leakPassword} {
		var rt http.RoundTripper = &http.Transport{}
		if pw != "" {
			rt = &shellywstest.DigestTransport{Password: pw, Base: rt}
		}
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, base+"/rpc/Ws.GetConfig", nil)
		require.NoError(t, err)
		resp, err := (&http.Client{Transport: rt}).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}

	srv.Stop()
	awaitWake(t, out) // the connection lost, the retry refused, asleep
	require.Error(t, c.LastError())
	for i, s := range secErrorTexts(c.LastError()) {
		assertNoSecret(t, fmt.Sprintf("LastError[%d]", i), s)
	}
	assertNoSecret(t, "log", logs.String())
	assertNoSecret(t, "transcript", transcript.String())
	assert.Contains(t, logs.String(), "remote_key=REDACTED", "the server is named, its secrets masked")
	assert.Contains(t, transcript.String(), "Shelly.SetAuth", "the transcript shows the call")
	require.NotEmpty(t, logs.Lines("level=WARN"), "the failures were logged")
}

// TestConfigSaveFailureKeepsThePathOffTheWire: a Ws.SetConfig whose save
// fails is answered 500 with a generic message; the store's error, which
// names a file of the device, is logged, never sent.
func TestConfigSaveFailureKeepsThePathOffTheWire(t *testing.T) {
	log, logs := secDebugLogger()
	srv := shellywstest.NewServer(t)
	startDevice(t, enabledConfig(srv.URL()), shellyws.WithLogger(log),
		shellyws.WithConfigStore(failingStore{shellyws.NewMemoryStore(enabledConfig(srv.URL()))}))
	conn := acceptConnected(t, testCtx(t), srv)
	err := conn.Call(testCtx(t), "Ws.SetConfig", map[string]any{"config": map[string]any{"ssl_ca": "*"}}, nil)
	var rpcErr *shellyws.Error
	require.True(t, errors.As(err, &rpcErr), "%v", err)
	assert.Equal(t, shellyws.CodeInternal, rpcErr.Code)
	assert.Equal(t, "Failed to save config", rpcErr.Message)
	assert.NotContains(t, rpcErr.Message, "LEAK")
	assert.Contains(t, logs.String(), "LEAK-path", "the detail is in the log")

	// Shelly.SetAuth with a store that fails: the same.
	dir := filepath.Join(t.TempDir(), "missing")
	c2, err := shellyws.New("shellyplus1pm-c049ef8cf4e0", shellyws.WithLogger(log),
		shellyws.WithAuthStore(shellyws.NewFileAuthStore(filepath.Join(dir, "auth.json"))))
	require.NoError(t, err)
	err = c2.SetAuth(shellyws.PasswordAuth(c2.ID(), leakPassword))
	wire := shellyws.AsError(err)
	assert.Equal(t, shellyws.CodeInternal, wire.Code)
	assert.Equal(t, "Failed to save auth", wire.Message, "what the wire gets")
	assert.ErrorIs(t, err, fs.ErrNotExist, "the caller gets the cause")
	assert.Contains(t, logs.String(), "missing", "the detail is in the log")
}
