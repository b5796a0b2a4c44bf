package shellyws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"

	"github.com/shellyws/shellyws/internal/atomicfile"
	"github.com/shellyws/shellyws/internal/sslca"
)

// Values of Config.SSLCA. A nil SSLCA verifies like SSLCABuiltin.
const (
	// SSLCABuiltin verifies the server against the built-in CA bundle: the
	// system roots, or the pool given with WithRootCAs.
	SSLCABuiltin = sslca.Builtin
	// SSLCAUser verifies the server against the user CA (WithUserCA).
	SSLCAUser = sslca.User
	// SSLCAInsecure uses TLS without verifying the server's certificate.
	SSLCAInsecure = sslca.Insecure
)

// ComponentKey is the key of this component in whole-device payloads such
// as Shelly.GetStatus and Shelly.GetConfig.
const ComponentKey = "ws"

// Config is the component's configuration, shaped like the JSON of
// Ws.GetConfig. Server and SSLCA are nil when null.
type Config struct {
	Enable bool    `json:"enable"`
	Server *string `json:"server"`
	SSLCA  *string `json:"ssl_ca"`
}

// DefaultConfig returns the factory configuration of a real device:
// {"enable": false, "server": null, "ssl_ca": "ca.pem"}.
func DefaultConfig() Config {
	ca := SSLCABuiltin
	return Config{SSLCA: &ca}
}

// Clone returns a deep copy, so that callers never share pointers.
func (c Config) Clone() Config {
	if c.Server != nil {
		s := *c.Server
		c.Server = &s
	}
	if c.SSLCA != nil {
		s := *c.SSLCA
		c.SSLCA = &s
	}
	return c
}

// Validate reports whether the config may be stored, with the rules of
// Ws.SetConfig. The error is an *Error with CodeInvalidArgument.
func (c Config) Validate() error {
	if c.SSLCA != nil {
		switch *c.SSLCA {
		case SSLCABuiltin, SSLCAUser, SSLCAInsecure:
		default:
			return Errorf(CodeInvalidArgument, "Invalid argument 'ssl_ca': must be %q, %q, %q or null",
				SSLCABuiltin, SSLCAUser, SSLCAInsecure)
		}
	}
	// A disabled component may park any server string (Fleet Manager stores "#").
	if c.Enable && c.Server != nil {
		if err := checkServerURL(*c.Server); err != nil {
			return Errorf(CodeInvalidArgument, "Invalid argument 'server': %s", err)
		}
	}
	return nil
}

func checkServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return errors.New("must start with ws:// or wss://")
	}
	if u.Hostname() == "" {
		return errors.New("has no host")
	}
	return nil
}

// MergeConfig applies the params of a Ws.SetConfig request,
// {"config": {...}}, to base: keys that are absent keep their value, an
// explicit null is a value, unknown keys are ignored. The merged config is
// validated; on any error base is returned unchanged with an *Error of
// CodeInvalidArgument.
func MergeConfig(base Config, params json.RawMessage) (Config, error) {
	// The firmware's words when config is absent; the others say what is
	// wrong instead.
	const missing = "Missing required argument 'config'!"
	if len(params) == 0 || isJSONNull(params) {
		return base, Errorf(CodeInvalidArgument, missing)
	}
	var outer map[string]json.RawMessage
	if json.Unmarshal(params, &outer) != nil {
		return base, Errorf(CodeInvalidArgument, "Invalid params: must be an object holding 'config'")
	}
	rawCfg, ok := outer["config"]
	if !ok {
		return base, Errorf(CodeInvalidArgument, missing)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(rawCfg, &fields) != nil || fields == nil {
		return base, Errorf(CodeInvalidArgument, "Invalid argument 'config': must be an object")
	}
	merged := base.Clone()
	if raw, ok := fields["enable"]; ok {
		if err := json.Unmarshal(raw, &merged.Enable); err != nil || isJSONNull(raw) {
			return base, Errorf(CodeInvalidArgument, "Invalid argument 'enable': must be a boolean")
		}
	}
	if raw, ok := fields["server"]; ok {
		if s, err := nullableString(raw); err != nil {
			return base, Errorf(CodeInvalidArgument, "Invalid argument 'server': must be a string or null")
		} else {
			merged.Server = s
		}
	}
	if raw, ok := fields["ssl_ca"]; ok {
		if s, err := nullableString(raw); err != nil {
			return base, Errorf(CodeInvalidArgument, "Invalid argument 'ssl_ca': must be a string or null")
		} else {
			merged.SSLCA = s
		}
	}
	if err := merged.Validate(); err != nil {
		return base, err
	}
	return merged, nil
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func nullableString(raw json.RawMessage) (*string, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return nil, errors.New("not a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ConfigStore keeps the component's configuration across restarts, as a
// device keeps it in flash. Implementations must be safe for concurrent use.
type ConfigStore interface {
	// Load returns the stored config, or DefaultConfig() if none was ever
	// saved.
	Load() (Config, error)
	// Save stores cfg so that a later Load returns it. Save must be atomic:
	// after a crash Load returns either the old or the new config.
	Save(cfg Config) error
}

// MemoryStore is a ConfigStore that keeps the config in memory.
type MemoryStore struct {
	mu  sync.Mutex
	cfg Config
}

// NewMemoryStore returns a store holding a copy of cfg.
func NewMemoryStore(cfg Config) *MemoryStore {
	return &MemoryStore{cfg: cfg.Clone()}
}

// Load implements ConfigStore.
func (s *MemoryStore) Load() (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Clone(), nil
}

// Save implements ConfigStore.
func (s *MemoryStore) Save(cfg Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg.Clone()
	return nil
}

// ErrBadConfigFile is wrapped by the errors FileStore.Load returns for a file
// that exists but cannot be used: unreadable, not JSON, or failing Validate.
var ErrBadConfigFile = errors.New("stored ws config is unusable")

// FileStore is a ConfigStore that keeps the config as JSON in one file.
// Saves are atomic and durable: the new config is written to a temporary
// file in the same directory, synced, renamed over the old one, and the
// directory is synced, so a reader sees the old or the new config, never a
// torn one. The file is written with mode 0600: the server URL may carry a
// token.
type FileStore struct{ file storeFile }

// NewFileStore returns a store backed by the file at path. The file need not
// exist yet; its directory must.
func NewFileStore(path string) *FileStore {
	return &FileStore{file: storeFile{path: path}}
}

// Path returns the file the store uses.
func (s *FileStore) Path() string { return s.file.path }

// Load implements ConfigStore. A missing file yields DefaultConfig(). A file
// that cannot be read or parsed, or that fails validation, is an error that
// names the file and wraps ErrBadConfigFile; the file is left as it is.
func (s *FileStore) Load() (Config, error) {
	data, err := s.file.read("config", ErrBadConfigFile)
	if err != nil {
		return Config{}, err
	}
	if data == nil {
		return DefaultConfig(), nil
	}
	return decodeStoredConfig(s.file.path, data)
}

func decodeStoredConfig(path string, data []byte) (Config, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return Config{}, fmt.Errorf("shellyws: config file %s is not a JSON object: %w", path, ErrBadConfigFile)
	}
	for _, key := range []string{"enable", "server", "ssl_ca"} {
		if _, ok := fields[key]; !ok {
			return Config{}, fmt.Errorf("shellyws: config file %s lacks %q: %w", path, key, ErrBadConfigFile)
		}
	}
	// Reuse the RPC merge so the file obeys exactly the rules of Ws.SetConfig.
	params, _ := json.Marshal(map[string]json.RawMessage{"config": data})
	cfg, err := MergeConfig(DefaultConfig(), params)
	if err != nil {
		return Config{}, fmt.Errorf("shellyws: config file %s: %w: %w", path, ErrBadConfigFile, err)
	}
	return cfg, nil
}

// Save implements ConfigStore.
func (s *FileStore) Save(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("shellyws: refusing to store an invalid config: %w", err)
	}
	return s.file.write("config", cfg)
}

// storeFile is the one JSON file a file store keeps its state in: read
// whole, written atomically and durably with mode 0600, one access at a
// time.
type storeFile struct {
	path string
	mu   sync.Mutex
}

// read returns the file's contents, nil when it does not exist; an
// unreadable file is an error naming what it holds and wrapping bad. It
// first removes the temporary files a crash during a write left behind,
// as far as it can: a directory it may not list does not stop the device.
func (f *storeFile) read(what string, bad error) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = atomicfile.RemoveStale(f.path)
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shellyws: reading %s file %s: %w (%w)", what, f.path, bad, err)
	}
	return data, nil
}

// write stores v as JSON, replacing the file whole.
func (f *storeFile) write(what string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := atomicfile.Write(f.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("shellyws: saving %s file %s: %w", what, f.path, err)
	}
	return nil
}
