package shellyws_test

// The claims of SECURITY.md that a test can check: TLS verification and its
// one off switch, the minimum TLS version, SNI and host name checks, user CA
// failures, secrets kept out of logs, errors and status, and the stored
// config's file mode and validation.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// secDebugLogger logs everything, debug included, as text into a buffer.
func secDebugLogger() (*slog.Logger, *testkit.Buffer) {
	b := &testkit.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

const secInsecureWarning = "TLS certificate verification is off"

// TestSecurityTLSVerificationOnByDefault: the factory config verifies the
// server against the built-in bundle; a self-signed server is refused.
func TestSecurityTLSVerificationOnByDefault(t *testing.T) {
	c, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	require.NotNil(t, c.GetConfig().SSLCA)
	assert.Equal(t, shellyws.SSLCABuiltin, *c.GetConfig().SSLCA, "factory ssl_ca")

	srv := shellywstest.NewTLSServer(t)
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	server := srv.URL()
	cfg.Server = &server
	log, logs := secDebugLogger()
	dev := startDevice(t, cfg, shellyws.WithLogger(log))
	require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 3 }, waitTimeout, time.Millisecond)
	assert.Zero(t, dev.Stats().Connects)
	assert.Zero(t, srv.Handshakes(), "no HTTP request reaches an unverified server")
	var uerr x509.UnknownAuthorityError
	assert.ErrorAs(t, dev.LastError(), &uerr)
	assert.Empty(t, logs.Lines(secInsecureWarning))
}

// TestSecurityTLSInsecureWarnsOncePerConnection: "*" is the only way to turn
// verification off, and every connection attempt made that way logs one
// warning; the verified modes log none.
func TestSecurityTLSInsecureWarnsOncePerConnection(t *testing.T) {
	srv := shellywstest.NewTLSServer(t)
	for _, tc := range []struct {
		name  string
		sslCA *string
		opts  []shellyws.Option
		warns bool
	}{
		{name: "star", sslCA: sslCA(shellyws.SSLCAInsecure), warns: true},
		{name: "ca.pem", sslCA: sslCA(shellyws.SSLCABuiltin), opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}},
		{name: "null", sslCA: nil, opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}},
		{name: "user_ca.pem", sslCA: sslCA(shellyws.SSLCAUser),
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return srv.CACertPEM(), nil })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const refused, connections = 2, 3
			srv.RejectNext(refused, http.StatusServiceUnavailable)
			log, logs := secDebugLogger()
			cfg := enabledConfig(srv.URL())
			cfg.SSLCA = tc.sslCA
			dev := startDevice(t, cfg, append(tc.opts, shellyws.WithLogger(log))...)
			ctx := testCtx(t)
			for i := range connections {
				conn, err := srv.Accept(ctx)
				require.NoError(t, err)
				_, err = conn.ExpectFullStatus(ctx)
				require.NoError(t, err)
				if i < connections-1 {
					require.NoError(t, conn.Close(websocket.StatusTryAgainLater, "again"))
				}
			}
			require.NoError(t, dev.AwaitConnected(ctx))
			st := dev.Stats()
			require.EqualValues(t, connections, st.Connects)
			require.EqualValues(t, refused, st.DialFailures)
			warnings := logs.Lines("level=WARN", secInsecureWarning)
			if !tc.warns {
				assert.Empty(t, warnings)
				return
			}
			assert.Len(t, warnings, refused+connections, "one warning per connection attempt:\n%s", logs)
			for _, w := range warnings {
				assert.Contains(t, w, "server=", "the warning names the server")
			}
		})
	}
}

// secTLSProbe is a wss:// server whose TLS settings a test chooses; it records
// every ClientHello and upgrades every request.
type secTLSProbe struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hellos []*tls.ClientHelloInfo
}

func newSecTLSProbe(t *testing.T, minVersion, maxVersion uint16) *secTLSProbe {
	p := &secTLSProbe{}
	release := make(chan struct{})
	var handlers hostileHandlerGroup
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		if !handlers.enter() {
			c.CloseNow()
			return
		}
		defer handlers.leave()
		go func() { <-release; c.CloseNow() }()
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				c.CloseNow()
				return
			}
		}
	}))
	p.srv.Config.ErrorLog = hostileDiscardLog()
	p.srv.TLS = &tls.Config{
		MinVersion: minVersion,
		MaxVersion: maxVersion,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			p.mu.Lock()
			p.hellos = append(p.hellos, hello)
			p.mu.Unlock()
			return nil, nil
		},
	}
	p.srv.StartTLS()
	t.Cleanup(func() { close(release); handlers.closeAndWait(); p.srv.Close() })
	return p
}

func (p *secTLSProbe) addr() string { return p.srv.Listener.Addr().String() }

func (p *secTLSProbe) lastHello(t *testing.T) *tls.ClientHelloInfo {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotEmpty(t, p.hellos, "no ClientHello arrived")
	return p.hellos[len(p.hellos)-1]
}

// secForceDial makes every TCP connection go to addr, whatever host the URL
// names: SNI and host name checks see the URL's host, the socket 127.0.0.1.
func secForceDial(addr string) shellyws.Option {
	return shellyws.WithDialContext(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
}

// TestSecurityTLSMinimumVersion12: the device offers TLS 1.2 and 1.3 only and
// refuses a server that speaks at most TLS 1.1, even with verification off.
func TestSecurityTLSMinimumVersion12(t *testing.T) {
	t.Run("TLS 1.1 server refused", func(t *testing.T) {
		p := newSecTLSProbe(t, tls.VersionTLS10, tls.VersionTLS11)
		cfg := enabledConfig(hostileURL("wss", p.addr()))
		cfg.SSLCA = sslCA(shellyws.SSLCAInsecure)
		dev := startDevice(t, cfg)
		require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 2 }, waitTimeout, time.Millisecond)
		assert.Zero(t, dev.Stats().Connects)
		assert.Contains(t, dev.LastError().Error(), "protocol version")
		for _, v := range p.lastHello(t).SupportedVersions {
			assert.GreaterOrEqual(t, v, uint16(tls.VersionTLS12), "offered %s", tls.VersionName(v))
		}
	})
	t.Run("TLS 1.2 server accepted", func(t *testing.T) {
		p := newSecTLSProbe(t, tls.VersionTLS12, tls.VersionTLS12)
		cfg := enabledConfig(hostileURL("wss", p.addr()))
		cfg.SSLCA = sslCA(shellyws.SSLCAInsecure)
		dev := startDevice(t, cfg)
		require.NoError(t, dev.AwaitConnected(testCtx(t)))
	})
}

// TestSecurityTLSSendsSNIAndChecksHostName: the URL's host name goes out as
// SNI in every mode, and a verified mode checks the certificate against it,
// not only against the CA.
func TestSecurityTLSSendsSNIAndChecksHostName(t *testing.T) {
	t.Run("SNI with star", func(t *testing.T) {
		p := newSecTLSProbe(t, 0, 0)
		_, port, _ := net.SplitHostPort(p.addr())
		cfg := enabledConfig("wss://fleet.example.test:" + port + "/shelly")
		cfg.SSLCA = sslCA(shellyws.SSLCAInsecure)
		dev := startDevice(t, cfg, secForceDial(p.addr()))
		require.NoError(t, dev.AwaitConnected(testCtx(t)))
		assert.Equal(t, "fleet.example.test", p.lastHello(t).ServerName)
	})
	srv := shellywstest.NewTLSServer(t) // certificate for 127.0.0.1 and localhost
	_, port, _ := net.SplitHostPort(srv.Addr())
	for _, tc := range []struct {
		name, host string
		sslCA      *string
		opts       []shellyws.Option
		connects   bool
	}{
		{name: "name in certificate, ca.pem", host: "localhost", sslCA: sslCA(shellyws.SSLCABuiltin),
			opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}, connects: true},
		{name: "name in certificate, user CA", host: "localhost", sslCA: sslCA(shellyws.SSLCAUser),
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return srv.CACertPEM(), nil })}, connects: true},
		{name: "name not in certificate, ca.pem", host: "fleet.example.test", sslCA: sslCA(shellyws.SSLCABuiltin),
			opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}},
		{name: "name not in certificate, user CA", host: "fleet.example.test", sslCA: sslCA(shellyws.SSLCAUser),
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return srv.CACertPEM(), nil })}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := enabledConfig("wss://" + tc.host + ":" + port + "/")
			cfg.SSLCA = tc.sslCA
			dev := startDevice(t, cfg, append(tc.opts, secForceDial(srv.Addr()))...)
			if tc.connects {
				require.NoError(t, dev.AwaitConnected(testCtx(t)))
				return
			}
			require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 2 }, waitTimeout, time.Millisecond)
			assert.Zero(t, dev.Stats().Connects)
			var herr x509.HostnameError
			assert.ErrorAs(t, dev.LastError(), &herr)
		})
	}
}

// TestSecurityUserCAFailureIsAnError: a user CA that cannot be loaded or
// holds no certificate is an error and nothing is dialled; the device never
// falls back to the built-in bundle or to no verification, even though both
// would accept this server.
func TestSecurityUserCAFailureIsAnError(t *testing.T) {
	srv := shellywstest.NewTLSServer(t)
	other := shellywstest.NewTLSServer(t)
	garbageDER := "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		name string
		load func() ([]byte, error)
		want error // nil: dialled, then refused as unknown authority
	}{
		{name: "not PEM", load: func() ([]byte, error) { return []byte("not a pem"), nil }, want: shellyws.ErrNoUserCA},
		{name: "empty", load: func() ([]byte, error) { return nil, nil }, want: shellyws.ErrNoUserCA},
		{name: "PEM of garbage", load: func() ([]byte, error) { return []byte(garbageDER), nil }, want: shellyws.ErrNoUserCA},
		{name: "load fails", load: func() ([]byte, error) { return nil, errors.New("flash read failed") }, want: shellyws.ErrNoUserCA},
		{name: "garbage next to another CA", load: func() ([]byte, error) { return append([]byte(garbageDER), other.CACertPEM()...), nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Handshakes()
			cfg := enabledConfig(srv.URL())
			cfg.SSLCA = sslCA(shellyws.SSLCAUser)
			var connected atomic.Bool
			dev := startDevice(t, cfg, shellyws.WithUserCA(tc.load), shellyws.WithRootCAs(srv.CertPool()),
				shellyws.WithOnConnect(func() { connected.Store(true) }))
			require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 3 }, waitTimeout, time.Millisecond)
			assert.False(t, connected.Load())
			assert.Equal(t, before, srv.Handshakes())
			if tc.want != nil {
				assert.ErrorIs(t, dev.LastError(), tc.want)
			} else {
				var uerr x509.UnknownAuthorityError
				assert.ErrorAs(t, dev.LastError(), &uerr)
			}
		})
	}
}

// Secrets in the server URL of TestSecuritySecretsNeverLeak: every one holds
// "SECRET", so a single search finds any of them.
const (
	secSecretUser     = "usr_SECRET_usr"
	secSecretPassword = "pw_SECRET_pw"
	secSecretToken    = "tok_SECRET_tok"
)

func secSecretURL(scheme, addr string) string {
	return scheme + "://" + secSecretUser + ":" + secSecretPassword + "@" + addr + "/shelly?token=" + secSecretToken + "&site=home"
}

// secErrorTexts returns every text an embedder could print of err: its
// message, its %+v and %#v forms, and the message of each error it wraps.
func secErrorTexts(err error) []string {
	var out []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		out = append(out, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
	}
	var ce *shellyws.ConnError
	if errors.As(err, &ce) {
		out = append(out, ce.Server)
	}
	return out
}

// TestSecuritySecretsNeverLeak: the user info and query of the server URL
// never appear in the log (debug level included), in LastError, in the
// errors passed to OnDisconnect, in ConnError's fields or in the status;
// only Ws.GetConfig returns them, because they are the config.
func TestSecuritySecretsNeverLeak(t *testing.T) {
	tlsSrv := shellywstest.NewTLSServer(t)
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	for _, tc := range []struct {
		name string
		// setup returns the server URL and, for a server that accepts,
		// a function that runs the connected part of the scenario.
		setup func(t *testing.T) (url string, opts []shellyws.Option, connected func(t *testing.T, dev *shellyws.Component))
	}{
		{name: "handshake refused 401", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			srv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
			srv.RejectNext(1000, http.StatusUnauthorized)
			return secSecretURL("ws", srv.Addr()), nil, nil
		}},
		{name: "handshake refused 503", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			srv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
			srv.RejectNext(1000, http.StatusServiceUnavailable)
			return secSecretURL("ws", srv.Addr()), nil, nil
		}},
		{name: "closed port", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			return secSecretURL("ws", closedPort(t)), nil, nil
		}},
		{name: "closed port wss", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			return secSecretURL("wss", closedPort(t)), nil, nil
		}},
		{name: "invalid port", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			return secSecretURL("ws", "127.0.0.1:99999"), nil, nil
		}},
		{name: "TLS unknown authority", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			return secSecretURL("wss", tlsSrv.Addr()), nil, nil
		}},
		{name: "TLS dial timeout", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			srv := newHostileRawServer(t, func(c net.Conn, quit <-chan struct{}) { <-quit })
			return secSecretURL("wss", srv.Addr()), []shellyws.Option{shellyws.WithDialTimeout(50 * time.Millisecond)}, nil
		}},
		{name: "user CA missing", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			return secSecretURL("wss", tlsSrv.Addr()), []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) {
				return nil, errors.New("no file")
			})}, nil
		}},
		{name: "connected, then closed, stopped and pinged out", setup: func(t *testing.T) (string, []shellyws.Option, func(*testing.T, *shellyws.Component)) {
			srv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
			return secSecretURL("ws", srv.Addr()), []shellyws.Option{shellyws.WithPing(20*time.Millisecond, time.Second)},
				func(t *testing.T, dev *shellyws.Component) {
					ctx := testCtx(t)
					conn, err := srv.Accept(ctx)
					require.NoError(t, err)
					_, err = conn.ExpectFullStatus(ctx)
					require.NoError(t, err)
					assert.Equal(t, "/shelly?token="+secSecretToken+"&site=home", conn.RequestURI(), "the URL is dialled verbatim")
					var status json.RawMessage
					require.NoError(t, conn.Call(ctx, "Ws.GetStatus", nil, &status))
					assert.NotContains(t, string(status), "SECRET")
					var cfg shellyws.Config
					require.NoError(t, conn.Call(ctx, "Ws.GetConfig", nil, &cfg))
					assert.Equal(t, secSecretURL("ws", srv.Addr()), *cfg.Server, "Ws.GetConfig returns the config itself")
					require.NoError(t, conn.Send(ctx, []byte(`{"id":1,"method":`))) // malformed, logged at debug
					require.NoError(t, conn.Close(4003, "go away"))
					conn, err = srv.Accept(ctx)
					require.NoError(t, err)
					_, err = conn.ExpectFullStatus(ctx)
					require.NoError(t, err)
					srv.Stop()
					_, err = dev.WaitForStateChange(ctx, shellyws.StateConnected)
					require.NoError(t, err)
				}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, opts, connected := tc.setup(t)
			log, logs := secDebugLogger()
			var mu sync.Mutex
			var lost []error
			cfg := enabledConfig(url)
			if strings.HasPrefix(url, "wss") && !strings.Contains(tc.name, "user CA") {
				cfg.SSLCA = sslCA(shellyws.SSLCABuiltin)
			} else if strings.Contains(tc.name, "user CA") {
				cfg.SSLCA = sslCA(shellyws.SSLCAUser)
			}
			dev := startDevice(t, cfg, append(opts, shellyws.WithLogger(log),
				shellyws.WithOnDisconnect(func(err error) { mu.Lock(); lost = append(lost, err); mu.Unlock() }))...)
			if connected != nil {
				connected(t, dev)
				require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(lost) >= 2 }, waitTimeout, time.Millisecond)
			}
			require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 2 }, waitTimeout, time.Millisecond)

			texts := map[string]string{"log": logs.String()}
			require.Error(t, dev.LastError())
			for i, s := range secErrorTexts(dev.LastError()) {
				texts[fmt.Sprintf("LastError[%d]", i)] = s
			}
			mu.Lock()
			for j, err := range lost {
				for i, s := range secErrorTexts(err) {
					texts[fmt.Sprintf("OnDisconnect %d [%d]", j, i)] = s
				}
			}
			mu.Unlock()
			status, err := json.Marshal(dev.GetStatus())
			require.NoError(t, err)
			texts["GetStatus"] = string(status)
			texts["Stats"] = fmt.Sprintf("%+v", dev.Stats())
			texts["State"] = dev.State().String()
			for where, text := range texts {
				assert.NotContains(t, text, "SECRET", "%s leaks a secret", where)
			}
			assert.NotEmpty(t, logs.Lines("level=WARN"), "the failures were logged")
			t.Logf("LastError: %v", dev.LastError())
		})
	}
}

// TestSecurityRedactionKeepsErrorIdentity: redacting the URL out of an error
// must not cost the embedder the cause: a refused connection or an unknown
// certificate authority is recognisable with errors.Is/As whether or not the
// URL carries a token.
func TestSecurityRedactionKeepsErrorIdentity(t *testing.T) {
	tlsSrv := shellywstest.NewTLSServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name  string
		url   func(withToken bool) string
		check func(t *testing.T, err error)
	}{
		{name: "connection refused",
			url: func(tok bool) string {
				if tok {
					return secSecretURL("ws", closed)
				}
				return hostileURL("ws", closed)
			},
			check: func(t *testing.T, err error) { assert.ErrorIs(t, err, syscall.ECONNREFUSED) }},
		{name: "unknown authority",
			url: func(tok bool) string {
				if tok {
					return secSecretURL("wss", tlsSrv.Addr())
				}
				return tlsSrv.URL()
			},
			check: func(t *testing.T, err error) {
				var uerr x509.UnknownAuthorityError
				assert.ErrorAs(t, err, &uerr)
			}},
	} {
		for _, tok := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, token %v", tc.name, tok), func(t *testing.T) {
				dev := startDevice(t, enabledConfig(tc.url(tok)))
				require.Eventually(t, func() bool { return dev.LastError() != nil }, waitTimeout, time.Millisecond)
				err := dev.LastError()
				assert.NotContains(t, err.Error(), "SECRET")
				tc.check(t, err)
			})
		}
	}
}

// TestSecurityConfigFileMode0600: the stored config, which may hold a token,
// is written with mode 0600, also over a file that had wider permissions,
// and no temporary file is left behind.
func TestSecurityConfigFileMode0600(t *testing.T) {
	for _, preexisting := range []bool{false, true} {
		t.Run(fmt.Sprintf("preexisting %v", preexisting), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ws.json")
			if preexisting {
				require.NoError(t, os.WriteFile(path, []byte(`{"enable":false,"server":null,"ssl_ca":"ca.pem"}`), 0o644))
				require.NoError(t, os.Chmod(path, 0o644))
			}
			c, err := shellyws.New(testDeviceID, shellyws.WithConfigStore(shellyws.NewFileStore(path)))
			require.NoError(t, err)
			// Ws.SetConfig as a server sends it.
			mux := shellyws.NewMux()
			c.Register(mux)
			_, err = mux.Dispatch(context.Background(), &shellyws.Request{Method: "Ws.SetConfig",
				Params: json.RawMessage(`{"config":{"enable":true,"server":"` + secSecretURL("wss", "fleet.example.test") + `"}}`)})
			require.NoError(t, err)
			info, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o600), info.Mode().Perm())
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Contains(t, string(data), secSecretToken, "the file holds the config")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary file left behind")
		})
	}
}

// TestSecurityBadConfigFileRefused: a stored config that cannot be read or
// fails validation makes New fail; it is never replaced by defaults, nor
// rewritten.
func TestSecurityBadConfigFileRefused(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"not JSON", `{"enable":true,`},
		{"not an object", `["ws://127.0.0.1/"]`},
		{"missing key", `{"enable":true,"server":"ws://127.0.0.1/"}`},
		{"enable not boolean", `{"enable":"yes","server":null,"ssl_ca":"ca.pem"}`},
		{"enabled with http server", `{"enable":true,"server":"http://127.0.0.1/","ssl_ca":"ca.pem"}`},
		{"enabled with no host", `{"enable":true,"server":"wss:///x","ssl_ca":"ca.pem"}`},
		{"unknown ssl_ca", `{"enable":true,"server":"wss://127.0.0.1/","ssl_ca":"none"}`},
		{"empty file", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ws.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			c, err := shellyws.New(testDeviceID, shellyws.WithConfigStore(shellyws.NewFileStore(path)))
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, shellyws.ErrBadConfigFile)
			assert.Contains(t, err.Error(), path, "the error names the file")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.content, string(data), "the file is left as it was")
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ws.json")
		require.NoError(t, os.Mkdir(path, 0o700)) // a directory cannot be read as a file
		_, err := shellyws.New(testDeviceID, shellyws.WithConfigStore(shellyws.NewFileStore(path)))
		assert.ErrorIs(t, err, shellyws.ErrBadConfigFile)
	})
}

// TestSecurityUserInfoIsNotSent: user info in the server URL is kept in the
// config but not sent; Go's HTTP client would otherwise send it as Basic
// authentication, in clear text over ws://, and a device sends no auth
// headers. It is never logged either (see TestSecuritySecretsNeverLeak).
func TestSecurityUserInfoIsNotSent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	startDevice(t, enabledConfig(secSecretURL("ws", srv.Listener.Addr().String())))
	select {
	case auth := <-got:
		assert.Empty(t, auth, "a device sends no auth headers")
	case <-time.After(waitTimeout):
		t.Fatal("no handshake")
	}
}

// TestHandshakeHeaders: the outbound handshake asks json-rpc and carries
// no Origin (Home Assistant's remote endpoint answers 403 to one, section
// 14), no Authorization and no User-Agent (docs/protocol-decisions.md).
func TestHandshakeHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	startDevice(t, enabledConfig("ws"+strings.TrimPrefix(srv.URL, "http")+"/shelly"))
	select {
	case h := <-got:
		assert.Equal(t, shellyws.Subprotocol, h.Get("Sec-WebSocket-Protocol"))
		for _, name := range []string{"Origin", "Authorization", "User-Agent", "Sec-WebSocket-Extensions"} {
			assert.Empty(t, h.Values(name), name)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no handshake")
	}
}

// TestSecurityNoRedirectNoCompression: the device dials exactly its URL: a
// redirect is a refused handshake, never followed to another host; and it
// offers no permessage-deflate, so a server cannot send a compression bomb
// past the read limit.
func TestSecurityNoRedirectNoCompression(t *testing.T) {
	target := shellywstest.NewServer(t)
	extensions := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case extensions <- r.Header.Get("Sec-WebSocket-Extensions"):
		default:
		}
		http.Redirect(w, r, target.URL(), http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	dev := startDevice(t, enabledConfig("ws"+strings.TrimPrefix(srv.URL, "http")))
	require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 3 }, waitTimeout, time.Millisecond)
	var ce *shellyws.ConnError
	require.ErrorAs(t, dev.LastError(), &ce)
	assert.Equal(t, http.StatusFound, ce.HTTPStatus)
	assert.Zero(t, target.Handshakes(), "the redirect was not followed")
	assert.Empty(t, <-extensions, "no websocket extension offered")
}
