package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The secrets every test looks for: none may survive.
const (
	password = "pw_SECRET_pw"
	token    = "tokSECRETtokAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 43 chars, as remote_key
	user     = "usr_SECRET_usr"
	ha1      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func assertClean(t *testing.T, got string) {
	t.Helper()
	for _, s := range []string{password, token, user, ha1, "SECRET"} {
		assert.NotContains(t, got, s, "in %q", got)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wss://fm.example/shelly?token=" + token, "wss://fm.example/shelly?token=REDACTED"},
		{"wss://ha.example:8123/api/shelly/remote?remote_key=" + token + "&x=1", "wss://ha.example:8123/api/shelly/remote?remote_key=REDACTED&x=REDACTED"},
		{"ws://" + user + ":" + password + "@127.0.0.1:8765/shelly", "ws://REDACTED@127.0.0.1:8765/shelly"},
		{"ws://" + user + "@h/p?" + token + "#frag", "ws://REDACTED@h/p?REDACTED#REDACTED"},
		{"ws://h/p?a=&=b&&c", "ws://h/p?a=&=REDACTED&&REDACTED"},
		{"ws://h:1/p", "ws://h:1/p"},
		{"/shelly?token=" + token, "/shelly?token=REDACTED"},
		{"ws://[::1/x?t=" + token, "ws://[::1/x?t=REDACTED"}, // unparsable, redacted all the same
		{"", ""},
		// A device's RPC over HTTP: the query is params.
		{`http://h/rpc/Ws.SetConfig?config={"ssl_ca":"*"}&id=0`, `http://h/rpc/Ws.SetConfig?config={"ssl_ca":"*"}&id=0`},
		{"/rpc/Shelly.SetAuth?user=admin&ha1=" + ha1, "/rpc/Shelly.SetAuth?user=admin&ha1=REDACTED"},
		{"/rpc/Ws.SetConfig?config=" + url.QueryEscape(`{"server":"wss://x/?token=`+token+`"}`), "/rpc/Ws.SetConfig?config=REDACTED"},
	} {
		got := URL(tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, got, URL(got), "idempotent")
		assertClean(t, got)
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Errors from net/http quote the URL; a sentence may end after it.
		{`Get "http://h:1/shelly?token=` + token + `": dial tcp: refused`, `Get "http://h:1/shelly?token=REDACTED": dial tcp: refused`},
		{"dialing ws://" + user + ":" + password + "@h/s?token=" + token + ".", "dialing ws://REDACTED@h/s?token=REDACTED."},
		{"== connected 127.0.0.1:5 GET /shelly?token=" + token + " subprotocol=json-rpc", "== connected 127.0.0.1:5 GET /shelly?token=REDACTED subprotocol=json-rpc"},
		{`<- Shelly.SetAuth {"user":"admin","realm":"shellyplus1pm-aabbccddeeff","ha1":"` + ha1 + `"}`, `<- Shelly.SetAuth {"user":"admin","realm":"shellyplus1pm-aabbccddeeff","ha1":"REDACTED"}`},
		{`{"config":{"server":"wss://x/y?remote_key=` + token + `","ssl_ca":"ca.pem"}}`, `{"config":{"server":"wss://x/y?remote_key=REDACTED","ssl_ca":"ca.pem"}}`},
		{`{"auth":{"realm":"r","nonce":"n","cnonce":1716556501,"response":"` + ha1 + `","nc":"00000001"}}`, `{"auth":{"realm":"r","nonce":"n","cnonce":"REDACTED","response":"REDACTED","nc":"00000001"}}`},
		{`{"wifi":{"sta":{"ssid":"home","pass":"` + password + `"}}}`, `{"wifi":{"sta":{"ssid":"home","pass":"REDACTED"}}}`},
		{`level=INFO msg=x password=` + password + ` pass="` + password + ` x" n=1`, `level=INFO msg=x password=REDACTED pass="REDACTED" n=1`},
		{"ha1 " + ha1 + " and a longer run " + ha1 + ha1, "ha1 REDACTED and a longer run REDACTED"},
		// Not secrets: left alone.
		{"fw 20231107-164738/1.0.8-g8c7bb8d, id=7, server=ws://h/p", "fw 20231107-164738/1.0.8-g8c7bb8d, id=7, server=ws://h/p"},
		{`{"pass":null,"password":""}`, `{"pass":null,"password":""}`},
	} {
		got := Text(tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, got, Text(got), "idempotent")
		assertClean(t, got)
	}
}

func TestSecretKey(t *testing.T) {
	for _, k := range []string{"password", "Password", "pass", "passwd", "pwd", "ha1", "response", "cnonce", "remote_key", "api_key", "token", "access_token", "client_secret", "Authorization", "credentials"} {
		assert.True(t, SecretKey(k), k)
	}
	for _, k := range []string{"server", "err", "method", "nonce", "realm", "user", "id", "src", "key", "ssl_ca", "auth_en", "auth_domain", "path", "remote"} {
		assert.False(t, SecretKey(k), k)
	}
}

type stringer struct{}

func (stringer) String() string { return "see ws://h/p?token=" + token }

func TestHandler(t *testing.T) {
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", json), func(t *testing.T) {
			var buf bytes.Buffer
			var next slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
			if json {
				next = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
			}
			log := Logger(slog.New(next))
			assert.Same(t, log, Logger(log), "wrapped once")
			u, err := url.Parse("wss://" + user + ":" + password + "@h/p?remote_key=" + token)
			require.NoError(t, err)
			log = log.With("server", u.String(), "password", password).WithGroup("g")
			log.Debug("dial ws://h/p?t="+token, "err", errors.New("failed: "+u.String()), "url", u, "s", stringer{},
				"params", map[string]any{"ha1": ha1, "n": 1}, "raw", []byte(`{"pass":"`+password+`"}`),
				slog.Group("auth", "response", ha1, "cnonce", 7), "ok", 3)
			out := buf.String()
			assertClean(t, out)
			assert.Contains(t, out, "h/p?remote_key=REDACTED")
			assert.Contains(t, out, "REDACTED@h")
			assert.Contains(t, out, "3", "other values kept")
		})
	}
	assert.Equal(t, slog.DiscardHandler, Handler(slog.DiscardHandler))
	assert.Nil(t, Logger(nil))
}

func TestError(t *testing.T) {
	assert.Equal(t, "", Error(nil))
	got := Error(fmt.Errorf("saving: %w", errors.New("ws://h/?token="+token)))
	assert.Equal(t, "saving: ws://h/?token=REDACTED", got)
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_.~%-]*[A-Za-z0-9_~%-]$`)

// FuzzText: Text never panics, is idempotent, and never lets a planted
// token through inside a URL.
func FuzzText(f *testing.F) {
	f.Add("ws://u:p@h/p?token=abc#f", "abcdef")
	f.Add(`{"ha1":"x","a":"b"}`, "x")
	f.Add("password=\"a\\\"b\" /x?y", "zzz")
	f.Fuzz(func(t *testing.T, s, secret string) {
		got := Text(s)
		if Text(got) != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, Text(got))
		}
		if !tokenRE.MatchString(secret) {
			return // a token, not punctuation that ends a sentence
		}
		planted := Text("x ws://h/p?k=" + secret + " y")
		if strings.Contains(planted, secret) && !strings.Contains("x ws://h/p?k=REDACTED y", secret) {
			t.Fatalf("%q leaks in %q", secret, planted)
		}
	})
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := Writer(&buf)
	assert.Equal(t, w, Writer(w), "wrapped once")
	line := "dialing ws://h/p?token=" + token + "\n"
	n, err := fmt.Fprint(w, line)
	require.NoError(t, err)
	assert.Equal(t, len(line), n, "the caller's length")
	assert.Equal(t, "dialing ws://h/p?token=REDACTED\n", buf.String())
}
