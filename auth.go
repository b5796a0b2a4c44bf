package shellyws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shellyws/shellyws/internal/digest"
)

// AuthUser is the only user a Gen2 device knows.
const AuthUser = "admin"

// SetAuthMethod is the RPC method that sets or clears the device password.
const SetAuthMethod = "Shelly.SetAuth"

// AuthConfig is the device's authentication state, as a device keeps it in
// flash: on or off, the realm (the device id) and
// ha1 = hex(SHA-256("admin:<realm>:<password>")). The password itself is
// never kept. The zero value means authentication is off.
//
// Its String and LogValue methods leave HA1 out, so that printing or
// logging the value does not leak it.
type AuthConfig struct {
	Enable bool   `json:"enable"`
	Realm  string `json:"realm,omitempty"`
	HA1    string `json:"ha1,omitempty"` // 64 lowercase hex digits when Enable
}

// ComputeHA1 returns hex(SHA-256("admin:<realm>:<password>")), the ha1 that
// Shelly.SetAuth carries; realm is the device id.
func ComputeHA1(realm, password string) string { return digest.HA1(realm, password) }

// PasswordAuth returns the AuthConfig that turns authentication on with
// password for the device whose id is realm, as Shelly.SetAuth would set it.
func PasswordAuth(realm, password string) AuthConfig {
	return AuthConfig{Enable: true, Realm: realm, HA1: ComputeHA1(realm, password)}
}

// Validate reports whether a may be stored: when enabled it needs a realm
// and an ha1 of 64 hex digits. The error is an *Error with
// CodeInvalidArgument and never contains the ha1.
func (a AuthConfig) Validate() error {
	if !a.Enable {
		return nil
	}
	if a.Realm == "" {
		return Errorf(CodeInvalidArgument, "Invalid argument 'realm': must be the device id")
	}
	if !digest.ValidHA1(a.HA1) {
		return Errorf(CodeInvalidArgument, "Invalid argument 'ha1': must be 64 hex digits or null")
	}
	return nil
}

// normalized returns a with the ha1 in lower case and, when off, nothing
// else kept: the hash of a disabled password is of no use to anyone.
func (a AuthConfig) normalized() AuthConfig {
	if !a.Enable {
		return AuthConfig{}
	}
	a.HA1 = strings.ToLower(a.HA1)
	return a
}

// String implements fmt.Stringer without the ha1.
func (a AuthConfig) String() string {
	if !a.Enable {
		return "auth off"
	}
	return fmt.Sprintf("auth on, realm %s", a.Realm)
}

// GoString implements fmt.GoStringer without the ha1, for %#v.
func (a AuthConfig) GoString() string {
	return fmt.Sprintf("shellyws.AuthConfig{Enable:%t, Realm:%q, HA1:<redacted>}", a.Enable, a.Realm)
}

// LogValue implements slog.LogValuer without the ha1.
func (a AuthConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("enable", a.Enable), slog.String("realm", a.Realm))
}

// AuthInfo is what Shelly.GetDeviceInfo reports about authentication;
// embed or copy it into the device info an embedder answers.
type AuthInfo struct {
	Enabled bool    `json:"auth_en"`
	Domain  *string `json:"auth_domain"` // the realm, nil when off
}

// AuthStore keeps the authentication state across restarts, like
// ConfigStore does the config. Implementations must be safe for concurrent
// use.
type AuthStore interface {
	// Load returns the stored state, or the zero AuthConfig (off) if none
	// was ever saved. A store that exists but cannot be used is an error,
	// never "off".
	Load() (AuthConfig, error)
	// Save stores a atomically: after a crash Load returns the old or the
	// new state.
	Save(a AuthConfig) error
}

// MemoryAuthStore is an AuthStore that keeps the state in memory.
type MemoryAuthStore struct {
	mu sync.Mutex
	a  AuthConfig
}

// NewMemoryAuthStore returns a store holding a.
func NewMemoryAuthStore(a AuthConfig) *MemoryAuthStore { return &MemoryAuthStore{a: a} }

// Load implements AuthStore.
func (s *MemoryAuthStore) Load() (AuthConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a, nil
}

// Save implements AuthStore.
func (s *MemoryAuthStore) Save(a AuthConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a = a
	return nil
}

// ErrBadAuthFile is wrapped by the errors FileAuthStore.Load returns for a
// file that exists but cannot be used. New fails with it rather than start
// a device whose password was lost with authentication off.
var ErrBadAuthFile = errors.New("stored auth state is unusable")

// FileAuthStore is an AuthStore that keeps the state as JSON in one file,
// written like FileStore's: atomically, durably and with mode 0600.
type FileAuthStore struct{ file storeFile }

// NewFileAuthStore returns a store backed by the file at path. The file
// need not exist yet; its directory must.
func NewFileAuthStore(path string) *FileAuthStore {
	return &FileAuthStore{file: storeFile{path: path}}
}

// Path returns the file the store uses.
func (s *FileAuthStore) Path() string { return s.file.path }

// Load implements AuthStore. A missing file is "off". A file that cannot be
// read, is not a JSON object with a boolean "enable", or fails Validate is
// an error naming the file and wrapping ErrBadAuthFile; it is left as is.
func (s *FileAuthStore) Load() (AuthConfig, error) {
	data, err := s.file.read("auth", ErrBadAuthFile)
	if err != nil || data == nil {
		return AuthConfig{}, err
	}
	return decodeStoredAuth(s.file.path, data)
}

func decodeStoredAuth(path string, data []byte) (AuthConfig, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return AuthConfig{}, fmt.Errorf("shellyws: auth file %s is not a JSON object: %w", path, ErrBadAuthFile)
	}
	var a AuthConfig
	raw, ok := fields["enable"]
	if !ok || isJSONNull(raw) || json.Unmarshal(raw, &a.Enable) != nil {
		return AuthConfig{}, fmt.Errorf("shellyws: auth file %s lacks a boolean \"enable\": %w", path, ErrBadAuthFile)
	}
	for key, dst := range map[string]*string{"realm": &a.Realm, "ha1": &a.HA1} {
		raw, ok := fields[key]
		if !ok || isJSONNull(raw) {
			continue
		}
		if s, err := nullableString(raw); err != nil {
			return AuthConfig{}, fmt.Errorf("shellyws: auth file %s: %q is not a string: %w", path, key, ErrBadAuthFile)
		} else {
			*dst = *s
		}
	}
	if err := a.Validate(); err != nil {
		return AuthConfig{}, fmt.Errorf("shellyws: auth file %s: %w: %w", path, ErrBadAuthFile, err)
	}
	return a.normalized(), nil
}

// Save implements AuthStore.
func (s *FileAuthStore) Save(a AuthConfig) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("shellyws: refusing to store invalid auth state: %w", err)
	}
	return s.file.write("auth", a.normalized())
}

// WithAuthStore sets where the authentication state is kept across
// restarts. New loads it and fails if it cannot, or if it is for another
// realm than the device id. Default: a MemoryAuthStore holding "off".
func WithAuthStore(s AuthStore) Option { return func(o *options) { o.authStore = s } }

// authBox holds a component's authentication state. Reads are lock-free:
// the Handler looks at it for every request.
type authBox struct {
	mu    sync.Mutex // serialises saves
	store AuthStore
	cur   atomic.Pointer[AuthConfig]
}

func (b *authBox) init(id string, store AuthStore) error {
	if store == nil {
		store = NewMemoryAuthStore(AuthConfig{})
	}
	b.store = store
	a, err := store.Load()
	if err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("shellyws: stored auth state is invalid: %w", err)
	}
	if a.Enable && a.Realm != id {
		return fmt.Errorf("shellyws: stored auth state is for realm %q, not device %q: %w", a.Realm, id, ErrBadAuthFile)
	}
	a = a.normalized()
	b.cur.Store(&a)
	return nil
}

func (b *authBox) get() AuthConfig {
	if p := b.cur.Load(); p != nil {
		return *p
	}
	return AuthConfig{}
}

// Auth returns the device's authentication state.
func (c *Component) Auth() AuthConfig { return c.auth.get() }

// AuthInfo returns auth_en and auth_domain for Shelly.GetDeviceInfo.
func (c *Component) AuthInfo() AuthInfo {
	a := c.auth.get()
	if !a.Enable {
		return AuthInfo{}
	}
	realm := a.Realm
	return AuthInfo{Enabled: true, Domain: &realm}
}

// SetAuth validates a, stores it and applies it at once, as Shelly.SetAuth
// does: from the next request on, the inbound channels ask for the new
// credentials (or none, when a is off). An enabled a must have the device
// id as realm. Errors are *Error values with CodeInvalidArgument, or wrap
// an *Error with CodeInternal "Failed to save auth" when the store fails:
// that is what the wire gets (the store's error, which names a file of the
// device, is wrapped for the caller and logged); the stored state is then
// unchanged.
func (c *Component) SetAuth(a AuthConfig) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if a.Enable && a.Realm != c.id {
		return Errorf(CodeInvalidArgument, "Invalid argument 'realm': must be the device id")
	}
	a = a.normalized()
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	if err := c.auth.store.Save(a); err != nil {
		// The store's error names a file of the device: the wire gets the
		// generic *Error (AsError finds it), the log and the caller the cause.
		c.opts.logger.Error("shellyws: saving the auth state failed", "err", err)
		return fmt.Errorf("%w: %w", Errorf(CodeInternal, "Failed to save auth"), err)
	}
	c.auth.cur.Store(&a)
	return nil
}

// rpcSetAuth serves Shelly.SetAuth
// {"user":"admin","realm":"<id>","ha1":"<64 hex>"|null}.
func (c *Component) rpcSetAuth(_ context.Context, req *Request) (any, error) {
	a, err := parseSetAuth(c.id, req.Params)
	if err != nil {
		return nil, err
	}
	if err := c.SetAuth(a); err != nil {
		return nil, err
	}
	return nil, nil
}

func parseSetAuth(id string, params json.RawMessage) (AuthConfig, error) {
	var fields map[string]json.RawMessage
	if len(params) == 0 || json.Unmarshal(params, &fields) != nil || fields == nil {
		return AuthConfig{}, Errorf(CodeInvalidArgument, "Missing required argument 'user'!")
	}
	str := func(key string) (string, bool) {
		raw, ok := fields[key]
		if !ok || isJSONNull(raw) {
			return "", false
		}
		s, err := nullableString(raw)
		if err != nil || s == nil {
			return "", false
		}
		return *s, true
	}
	if u, ok := str("user"); !ok || u != AuthUser {
		return AuthConfig{}, Errorf(CodeInvalidArgument, "Invalid argument 'user': must be %q", AuthUser)
	}
	if r, ok := str("realm"); !ok || r != id {
		return AuthConfig{}, Errorf(CodeInvalidArgument, "Invalid argument 'realm': must be the device id")
	}
	raw, ok := fields["ha1"]
	if !ok {
		return AuthConfig{}, Errorf(CodeInvalidArgument, "Missing required argument 'ha1'!")
	}
	if isJSONNull(raw) {
		return AuthConfig{}, nil
	}
	ha1, ok := str("ha1")
	if !ok || !digest.ValidHA1(ha1) {
		return AuthConfig{}, Errorf(CodeInvalidArgument, "Invalid argument 'ha1': must be 64 hex digits or null")
	}
	return AuthConfig{Enable: true, Realm: id, HA1: ha1}, nil
}

// deviceInfoMethod is the method GET /shelly answers with.
const deviceInfoMethod = "Shelly.GetDeviceInfo"

// isExempt reports whether method never needs authentication: a device
// tells who it is to anyone.
func isExempt(method string) bool { return strings.EqualFold(method, deviceInfoMethod) }
