package shellyws_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// cfgStr returns a pointer to s, for Config's nullable fields.
func cfgStr(s string) *string { return &s }

// cfgJSON is the Ws.GetConfig form of c.
func cfgJSON(t *testing.T, c shellyws.Config) string {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	return string(b)
}

func TestDefaultConfig(t *testing.T) {
	assert.Equal(t, `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`, cfgJSON(t, shellyws.DefaultConfig()))
	require.NoError(t, shellyws.DefaultConfig().Validate())

	// Each call is a fresh value: thousands of simulated devices may start
	// from it, and one must not change another's default.
	a := shellyws.DefaultConfig()
	*a.SSLCA = "*"
	assert.Equal(t, shellyws.SSLCABuiltin, *shellyws.DefaultConfig().SSLCA)
}

func TestConfigJSONKeys(t *testing.T) {
	c := shellyws.Config{Enable: true, Server: cfgStr("wss://h/p"), SSLCA: nil}
	assert.Equal(t, `{"enable":true,"server":"wss://h/p","ssl_ca":null}`, cfgJSON(t, c))
}

func TestConfigClone(t *testing.T) {
	orig := shellyws.Config{Enable: true, Server: cfgStr("wss://a"), SSLCA: cfgStr("*")}
	c := orig.Clone()
	require.Equal(t, orig, c)
	assert.NotSame(t, orig.Server, c.Server)
	assert.NotSame(t, orig.SSLCA, c.SSLCA)

	*c.Server = "wss://b"
	*c.SSLCA = "ca.pem"
	assert.Equal(t, "wss://a", *orig.Server)
	assert.Equal(t, "*", *orig.SSLCA)

	nils := shellyws.Config{Enable: true}.Clone()
	assert.Nil(t, nils.Server)
	assert.Nil(t, nils.SSLCA)
}

func TestConfigValidate(t *testing.T) {
	valid := []shellyws.Config{
		shellyws.DefaultConfig(),
		{},
		{Enable: true},
		{Enable: true, Server: cfgStr("ws://h"), SSLCA: cfgStr("user_ca.pem")},
		{Enable: true, Server: cfgStr("wss://h:8443/p?token=x"), SSLCA: cfgStr("*")},
		{Enable: false, Server: cfgStr("#")},
		{Enable: false, Server: cfgStr("http://x")},
	}
	for _, c := range valid {
		assert.NoError(t, c.Validate(), cfgJSON(t, c))
	}
	invalid := []shellyws.Config{
		{SSLCA: cfgStr("")},
		{SSLCA: cfgStr("x")},
		{Enable: true, Server: cfgStr("")},
		{Enable: true, Server: cfgStr("#")},
		{Enable: true, Server: cfgStr("http://h")},
		{Enable: true, Server: cfgStr("ws://")},
	}
	for _, c := range invalid {
		requireRPCError(t, c.Validate(), shellyws.CodeInvalidArgument)
	}
}

// A base config as stored on a device that is connected to Fleet Manager.
func fleetBase() shellyws.Config {
	return shellyws.Config{Enable: true, Server: cfgStr("wss://fm.example/shelly?token=abc"), SSLCA: cfgStr("ca.pem")}
}

func TestMergeConfigAccepts(t *testing.T) {
	tests := []struct {
		name   string
		base   shellyws.Config
		params string
		want   string // the merged config as JSON
	}{
		{
			name: "Home Assistant set-up", base: shellyws.DefaultConfig(),
			params: `{"config":{"enable":true,"server":"ws://192.168.1.10:8123/api/shelly/ws","ssl_ca":"*"}}`,
			want:   `{"enable":true,"server":"ws://192.168.1.10:8123/api/shelly/ws","ssl_ca":"*"}`,
		},
		{
			name: "Fleet Manager parks with #", base: fleetBase(),
			params: `{"config":{"server":"#","enable":false}}`,
			want:   `{"enable":false,"server":"#","ssl_ca":"ca.pem"}`,
		},
		{
			name: "disabled keeps any server string", base: shellyws.DefaultConfig(),
			params: `{"config":{"server":"http://not-a-ws-url"}}`,
			want:   `{"enable":false,"server":"http://not-a-ws-url","ssl_ca":"ca.pem"}`,
		},
		{
			name: "disabled keeps empty server", base: fleetBase(),
			params: `{"config":{"enable":false,"server":""}}`,
			want:   `{"enable":false,"server":"","ssl_ca":"ca.pem"}`,
		},
		{
			name: "enabled without server", base: shellyws.DefaultConfig(),
			params: `{"config":{"enable":true,"server":null}}`,
			want:   `{"enable":true,"server":null,"ssl_ca":"ca.pem"}`,
		},
		{
			name: "enable alone with no stored server", base: shellyws.DefaultConfig(),
			params: `{"config":{"enable":true}}`,
			want:   `{"enable":true,"server":null,"ssl_ca":"ca.pem"}`,
		},
		{
			name: "empty config keeps everything", base: fleetBase(),
			params: `{"config":{}}`,
			want:   `{"enable":true,"server":"wss://fm.example/shelly?token=abc","ssl_ca":"ca.pem"}`,
		},
		{
			name: "absent keys keep values", base: fleetBase(),
			params: `{"config":{"ssl_ca":"user_ca.pem"}}`,
			want:   `{"enable":true,"server":"wss://fm.example/shelly?token=abc","ssl_ca":"user_ca.pem"}`,
		},
		{
			name: "explicit null server", base: fleetBase(),
			params: `{"config":{"server":null}}`,
			want:   `{"enable":true,"server":null,"ssl_ca":"ca.pem"}`,
		},
		{
			name: "explicit null ssl_ca", base: fleetBase(),
			params: `{"config":{"ssl_ca":null}}`,
			want:   `{"enable":true,"server":"wss://fm.example/shelly?token=abc","ssl_ca":null}`,
		},
		{
			name: "ssl_ca ca.pem", base: shellyws.Config{SSLCA: cfgStr("*")},
			params: `{"config":{"ssl_ca":"ca.pem"}}`,
			want:   `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`,
		},
		{
			name: "ssl_ca user_ca.pem", base: shellyws.DefaultConfig(),
			params: `{"config":{"ssl_ca":"user_ca.pem"}}`,
			want:   `{"enable":false,"server":null,"ssl_ca":"user_ca.pem"}`,
		},
		{
			name: "ssl_ca star", base: shellyws.DefaultConfig(),
			params: `{"config":{"ssl_ca":"*"}}`,
			want:   `{"enable":false,"server":null,"ssl_ca":"*"}`,
		},
		{
			name: "null ssl_ca restored to a value", base: shellyws.Config{},
			params: `{"config":{"ssl_ca":"ca.pem"}}`,
			want:   `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`,
		},
		{
			name: "unknown keys ignored", base: shellyws.DefaultConfig(),
			params: `{"config":{"enable":true,"server":"ws://h","future_key":{"a":[1]},"Enable":"x"},"other":1}`,
			want:   `{"enable":true,"server":"ws://h","ssl_ca":"ca.pem"}`,
		},
		{
			name: "disable keeps the server", base: fleetBase(),
			params: `{"config":{"enable":false}}`,
			want:   `{"enable":false,"server":"wss://fm.example/shelly?token=abc","ssl_ca":"ca.pem"}`,
		},
		{
			name: "whitespace around values", base: fleetBase(),
			params: " { \"config\" : { \"server\" : null , \"enable\" : false } } ",
			want:   `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			baseBefore := tt.base.Clone()
			got, err := shellyws.MergeConfig(tt.base, json.RawMessage(tt.params))
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfgJSON(t, got))
			assert.NoError(t, got.Validate())
			assert.Equal(t, baseBefore, tt.base, "base must not be modified")
			assertNoSharedPointers(t, tt.base, got)
		})
	}
}

func TestMergeConfigKeepsURLVerbatim(t *testing.T) {
	// Servers put tokens in the query; the device dials the string as given.
	urls := []string{
		"wss://fm.example/shelly?token=a%2Fb%3D&x=1",
		"ws://192.168.1.10:8123/api/shelly/ws",
		"ws://[fe80::1]:8485/",
		"wss://user:pass@host.example:443/p/a/t/h?q=%20#frag",
		"wss://host.example/ünïcode?x=ÿ",
		"WSS://Host.Example/Path",
	}
	for _, u := range urls {
		params, err := json.Marshal(map[string]any{"config": map[string]any{"enable": true, "server": u}})
		require.NoError(t, err)
		got, err := shellyws.MergeConfig(shellyws.DefaultConfig(), params)
		require.NoError(t, err, u)
		require.NotNil(t, got.Server)
		assert.Equal(t, u, *got.Server)
	}
}

func TestMergeConfigRejects(t *testing.T) {
	tests := []struct {
		name   string
		base   shellyws.Config
		params string
		field  string // the argument the message must name
	}{
		{name: "params absent", params: "", field: "config"},
		{name: "params null", params: `null`, field: "config"},
		{name: "params not JSON", params: `{"config":`, field: "config"},
		{name: "params garbage", params: `hello`, field: "config"},
		{name: "params array", params: `[{"config":{}}]`, field: "config"},
		{name: "params string", params: `"config"`, field: "config"},
		{name: "config missing", params: `{}`, field: "config"},
		{name: "config other case", params: `{"Config":{"enable":false}}`, field: "config"},
		{name: "config null", params: `{"config":null}`, field: "config"},
		{name: "config array", params: `{"config":[]}`, field: "config"},
		{name: "config string", params: `{"config":"{}"}`, field: "config"},
		{name: "config number", params: `{"config":1}`, field: "config"},
		{name: "config bool", params: `{"config":true}`, field: "config"},

		{name: "enable string", params: `{"config":{"enable":"true"}}`, field: "enable"},
		{name: "enable null", params: `{"config":{"enable":null}}`, field: "enable"},
		{name: "enable number", params: `{"config":{"enable":1}}`, field: "enable"},
		{name: "enable zero", params: `{"config":{"enable":0}}`, field: "enable"},
		{name: "enable object", params: `{"config":{"enable":{}}}`, field: "enable"},
		{name: "enable array", params: `{"config":{"enable":[true]}}`, field: "enable"},

		{name: "server number", params: `{"config":{"server":1}}`, field: "server"},
		{name: "server bool", params: `{"config":{"server":false}}`, field: "server"},
		{name: "server object", params: `{"config":{"server":{"url":"ws://h"}}}`, field: "server"},
		{name: "server array", params: `{"config":{"server":["ws://h"]}}`, field: "server"},

		{name: "ssl_ca unknown", params: `{"config":{"ssl_ca":"x"}}`, field: "ssl_ca"},
		{name: "ssl_ca empty", params: `{"config":{"ssl_ca":""}}`, field: "ssl_ca"},
		{name: "ssl_ca other case", params: `{"config":{"ssl_ca":"CA.PEM"}}`, field: "ssl_ca"},
		{name: "ssl_ca padded", params: `{"config":{"ssl_ca":" ca.pem"}}`, field: "ssl_ca"},
		{name: "ssl_ca path", params: `{"config":{"ssl_ca":"/etc/ssl/ca.pem"}}`, field: "ssl_ca"},
		{name: "ssl_ca number", params: `{"config":{"ssl_ca":1}}`, field: "ssl_ca"},
		{name: "ssl_ca bool", params: `{"config":{"ssl_ca":true}}`, field: "ssl_ca"},
		{name: "ssl_ca object", params: `{"config":{"ssl_ca":{}}}`, field: "ssl_ca"},

		{name: "enabled http URL", params: `{"config":{"enable":true,"server":"http://h"}}`, field: "server"},
		{name: "enabled https URL", params: `{"config":{"enable":true,"server":"https://h/ws"}}`, field: "server"},
		{name: "enabled no host", params: `{"config":{"enable":true,"server":"ws://"}}`, field: "server"},
		{name: "enabled no host wss", params: `{"config":{"enable":true,"server":"wss:///path"}}`, field: "server"},
		{name: "enabled port only", params: `{"config":{"enable":true,"server":"ws://:8080/"}}`, field: "server"},
		{name: "enabled opaque", params: `{"config":{"enable":true,"server":"ws:host"}}`, field: "server"},
		{name: "enabled empty", params: `{"config":{"enable":true,"server":""}}`, field: "server"},
		{name: "enabled hash", params: `{"config":{"enable":true,"server":"#"}}`, field: "server"},
		{name: "enabled bare host", params: `{"config":{"enable":true,"server":"fm.example"}}`, field: "server"},
		{name: "enabled bad escape", params: `{"config":{"enable":true,"server":"ws://h/%zz"}}`, field: "server"},

		// The rule applies to the merged config, not to the request alone.
		{name: "enable with parked server", base: shellyws.Config{Server: cfgStr("#"), SSLCA: cfgStr("ca.pem")},
			params: `{"config":{"enable":true}}`, field: "server"},
		{name: "bad server while enabled", base: fleetBase(),
			params: `{"config":{"server":"#"}}`, field: "server"},

		// One bad key spoils the whole request; nothing is half-applied.
		{name: "good enable bad ssl_ca", base: fleetBase(),
			params: `{"config":{"enable":false,"server":null,"ssl_ca":"nope"}}`, field: "ssl_ca"},
		{name: "good server bad enable", base: fleetBase(),
			params: `{"config":{"server":"ws://other","enable":"no"}}`, field: "enable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == (shellyws.Config{}) {
				base = fleetBase()
			}
			baseBefore := base.Clone()
			var params json.RawMessage
			if tt.params != "" {
				params = json.RawMessage(tt.params)
			}

			got, err := shellyws.MergeConfig(base, params)

			e := requireRPCError(t, err, shellyws.CodeInvalidArgument)
			assert.Contains(t, e.Message, tt.field)
			assert.Equal(t, baseBefore, got, "on error base is returned unchanged")
			assert.Equal(t, baseBefore, base, "base must not be modified")
		})
	}
}

// assertNoSharedPointers checks that changing b cannot change a.
func assertNoSharedPointers(t *testing.T, a, b shellyws.Config) {
	t.Helper()
	if a.Server != nil && b.Server != nil {
		assert.NotSame(t, a.Server, b.Server, "server pointer shared")
	}
	if a.SSLCA != nil && b.SSLCA != nil {
		assert.NotSame(t, a.SSLCA, b.SSLCA, "ssl_ca pointer shared")
	}
}

func TestMemoryStore(t *testing.T) {
	cfg := fleetBase()
	s := shellyws.NewMemoryStore(cfg)

	// The store keeps a copy: the caller's pointers are the caller's.
	*cfg.Server = "ws://changed"
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, fleetBase(), got)

	// Load hands out copies too.
	*got.SSLCA = "*"
	got, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, fleetBase(), got)

	next := shellyws.Config{Enable: false, Server: cfgStr("#"), SSLCA: nil}
	require.NoError(t, s.Save(next))
	*next.Server = "mutated"
	got, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, shellyws.Config{Server: cfgStr("#")}, got)
}

func TestMemoryStoreConcurrent(t *testing.T) {
	s := shellyws.NewMemoryStore(shellyws.DefaultConfig())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c, err := s.Load()
				assert.NoError(t, err)
				c.Enable = !c.Enable
				assert.NoError(t, s.Save(c))
			}
		})
	}
	wg.Wait()
}

func TestFileStoreMissingFileIsDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ws.json")
	s := shellyws.NewFileStore(path)
	assert.Equal(t, path, s.Path())

	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, shellyws.DefaultConfig(), got)
	assert.NoFileExists(t, path, "Load must not create the file")
}

func TestFileStoreRoundTrip(t *testing.T) {
	configs := []shellyws.Config{
		shellyws.DefaultConfig(),
		fleetBase(),
		{Enable: true, Server: cfgStr("ws://h/?a=1&b=<2>"), SSLCA: cfgStr("*")},
		{Enable: true, Server: nil, SSLCA: cfgStr("user_ca.pem")},
		{Enable: false, Server: cfgStr("#"), SSLCA: nil},
		{Enable: false, Server: cfgStr("ünïcode \"quoted\""), SSLCA: cfgStr("ca.pem")},
	}
	path := filepath.Join(t.TempDir(), "ws.json")
	s := shellyws.NewFileStore(path)
	for _, c := range configs {
		require.NoError(t, s.Save(c))

		got, err := s.Load()
		require.NoError(t, err)
		assert.Equal(t, c, got)

		// A fresh store (as after a reboot) reads the same.
		got, err = shellyws.NewFileStore(path).Load()
		require.NoError(t, err)
		assert.Equal(t, c, got)

		// The file holds exactly the Ws.GetConfig keys.
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var keys map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &keys))
		assert.Len(t, keys, 3)
		assert.JSONEq(t, cfgJSON(t, c), string(data))
	}
}

func TestFileStoreMode0600(t *testing.T) {
	// The server URL may carry a token, so the file is private, also when it
	// replaces a file that was readable by others.
	path := filepath.Join(t.TempDir(), "ws.json")
	require.NoError(t, os.WriteFile(path, []byte(cfgJSON(t, shellyws.DefaultConfig())), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))

	require.NoError(t, shellyws.NewFileStore(path).Save(fleetBase()))

	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestFileStoreBadFile(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"empty", ``},
		{"not JSON", `enable=true`},
		{"truncated", `{"enable":false,"server":null,"ssl_ca":"ca.p`},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"ca.pem"`},
		{"missing enable", `{"server":null,"ssl_ca":"ca.pem"}`},
		{"missing server", `{"enable":false,"ssl_ca":"ca.pem"}`},
		{"missing ssl_ca", `{"enable":false,"server":null}`},
		{"empty object", `{}`},
		{"bad ssl_ca", `{"enable":false,"server":null,"ssl_ca":"x"}`},
		{"enabled http server", `{"enable":true,"server":"http://x","ssl_ca":"ca.pem"}`},
		{"enable string", `{"enable":"yes","server":null,"ssl_ca":"ca.pem"}`},
		{"enable null", `{"enable":null,"server":null,"ssl_ca":"ca.pem"}`},
		{"server number", `{"enable":false,"server":5,"ssl_ca":"ca.pem"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ws.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.data), 0o600))

			_, err := shellyws.NewFileStore(path).Load()

			require.Error(t, err)
			assert.ErrorIs(t, err, shellyws.ErrBadConfigFile)
			assert.Contains(t, err.Error(), path, "the error must say which file to fix")
			data, readErr := os.ReadFile(path)
			require.NoError(t, readErr)
			assert.Equal(t, tt.data, string(data), "a bad file is left for a human to inspect")
		})
	}
}

func TestFileStoreExtraKeysAndWhitespace(t *testing.T) {
	// Newer firmware may add keys; an older reader must still load the file.
	path := filepath.Join(t.TempDir(), "ws.json")
	data := "\n{ \"enable\": true, \"server\": \"wss://h/p?t=1\", \"ssl_ca\": null, \"future\": [1] }\n\n"
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))

	got, err := shellyws.NewFileStore(path).Load()
	require.NoError(t, err)
	assert.Equal(t, shellyws.Config{Enable: true, Server: cfgStr("wss://h/p?t=1")}, got)
}

func TestFileStoreSaveRefusesInvalidConfig(t *testing.T) {
	invalid := []shellyws.Config{
		{Enable: true, Server: cfgStr("http://x"), SSLCA: cfgStr("ca.pem")},
		{Enable: true, Server: cfgStr("#")},
		{SSLCA: cfgStr("x")},
	}
	for _, c := range invalid {
		t.Run(cfgJSON(t, c), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ws.json")
			s := shellyws.NewFileStore(path)

			// No file yet: a refused Save creates none.
			requireRPCError(t, s.Save(c), shellyws.CodeInvalidArgument)
			assert.NoFileExists(t, path)

			// An existing file is left as it was.
			require.NoError(t, s.Save(fleetBase()))
			before, err := os.ReadFile(path)
			require.NoError(t, err)

			requireRPCError(t, s.Save(c), shellyws.CodeInvalidArgument)

			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, before, after)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temp file left behind")
		})
	}
}

func TestFileStoreUnreadablePath(t *testing.T) {
	// A directory where the file should be: not missing, and not usable.
	path := filepath.Join(t.TempDir(), "ws.json")
	require.NoError(t, os.Mkdir(path, 0o700))
	s := shellyws.NewFileStore(path)

	_, err := s.Load()
	require.Error(t, err)
	assert.ErrorIs(t, err, shellyws.ErrBadConfigFile)
	assert.Contains(t, err.Error(), path)

	err = s.Save(shellyws.DefaultConfig())
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	info, statErr := os.Stat(path)
	require.NoError(t, statErr)
	assert.True(t, info.IsDir(), "the directory must survive a failed Save")
}

func TestFileStoreMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "ws.json")
	s := shellyws.NewFileStore(path)

	got, err := s.Load()
	require.NoError(t, err, "nothing stored yet is not an error")
	assert.Equal(t, shellyws.DefaultConfig(), got)

	err = s.Save(fleetBase())
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the cause is kept: %v", err)
}
