package shellyws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shellyws/shellyws/internal/evws"
	"github.com/shellyws/shellyws/internal/sslca"
)

// Errors of the component's Go API.
var (
	// ErrClosed is returned by AwaitConnected after Run has returned.
	ErrClosed = errors.New("shellyws: component closed")
	// ErrAlreadyRunning is returned by Run or Wake while the component
	// already runs, in Run or in a Wake: the two never run at once.
	ErrAlreadyRunning = errors.New("shellyws: already running (Run or Wake)")
	// ErrRestarted is the cause of a connection closed by Restart.
	ErrRestarted = errors.New("shellyws: restarted to apply the stored config")
	// ErrRebooted is the cause of a connection dropped by Reboot.
	ErrRebooted = errors.New("shellyws: rebooted")
	// ErrNoServer is LastError while the component is enabled without a
	// server: Run has nothing to dial and waits for a Restart.
	ErrNoServer = errors.New("shellyws: enabled but no server configured")
	// ErrNoUserCA means ssl_ca is "user_ca.pem" but no user CA could be
	// loaded or parsed; the device keeps retrying.
	ErrNoUserCA = sslca.ErrNoUserCA
)

// Who runs a component: Run (for good) or a Wake (while it lasts).
const (
	notRunning int32 = iota
	runByRun
	runByWake
)

// alreadyRunning is ErrAlreadyRunning saying which call clashed with what.
type alreadyRunning string

func (e alreadyRunning) Error() string      { return string(e) }
func (alreadyRunning) Is(target error) bool { return target == ErrAlreadyRunning }

// claimRun makes caller (runByRun or runByWake) the one that runs c, or
// returns an error wrapping ErrAlreadyRunning that names the clash.
func (c *Component) claimRun(caller int32) error {
	if c.running.CompareAndSwap(notRunning, caller) {
		return nil
	}
	switch holder := c.running.Load(); {
	case caller == runByRun && holder == runByRun:
		return alreadyRunning("shellyws: Run was already called (or Start); a component runs once")
	case caller == runByRun:
		return alreadyRunning("shellyws: a Wake is running; Run (or Start) and Wake never run at once")
	case holder == runByWake:
		return alreadyRunning("shellyws: another Wake is running")
	}
	return alreadyRunning("shellyws: Run was called (or Start); a device that runs does not wake")
}

// Component is the Outbound Websocket component of one device: its config,
// its status and, while Run runs, its connection to the configured server.
// All methods are safe for concurrent use.
type Component struct {
	id     string
	opts   options
	wsOpts *evws.Options // of the outbound connections
	disp   Dispatcher

	// Lock order: mu, then the store (Save runs under mu); auth.mu, then
	// the auth store; wake.mu, then the state's lock; subsMu, the state's
	// and the queue's locks are never held while taking another.
	mu        sync.Mutex
	stored    Config          // what the store holds; GetConfig returns it
	active    Config          // what Run dials with; set by Restart and boots
	restart   context.Context // cancelled and replaced by Restart and Reboot
	restarted context.CancelCauseFunc
	// watch is what Restart and Reboot stop: Run's dial under way or its
	// outbound connection. One slot, instead of a context.AfterFunc on
	// restart per connection, whose children map would stay with the
	// device for its life.
	watch restartWatch
	// power ends when the device goes down (Reboot) and is replaced when it
	// is back; inbound channels drop their clients with it. It is made by
	// the first powerState: a device without inbound channels never needs
	// one. While the device is down it is poweredOff.
	power    context.Context
	powerOff context.CancelFunc
	down     bool                 // between Reboot and the end of the boot
	live     atomic.Pointer[peer] // the outbound connection while it is up

	running atomic.Int32 // who runs the component: notRunning, runByRun or runByWake
	runner  *runner      // Run's or Start's, under mu; nil before either
	state   *stateBox
	queue   *notifyQueue

	subsMu sync.Mutex
	subs   map[int]func(method string, params []byte)
	subSeq int

	connects, disconnects, dialFailures atomic.Uint64

	auth authBox   // authentication state; see auth.go
	wake wakeState // the wake cycle of a sleeping device; see wake.go
}

// New returns the component of the device whose id is deviceID, e.g.
// "shellyplus1pm-c049ef8cf4e0" (the src of every frame it sends): a model
// part of ASCII letters, digits, '-' and '_' that starts with a letter or
// digit, then '-' and the 12 hex digits
// of the MAC, lower-case as most models write it or upper-case as the Wall
// Display does ("ShellyWallDisplay-00082261E102"); any other id is an
// error, since servers derive the MAC from it. It loads the
// config from the store (see WithConfigStore); a store that fails to load is
// an error, never silently replaced with defaults. An option given a value
// that would make a broken device is an error naming that option.
func New(deviceID string, opts ...Option) (*Component, error) {
	if err := checkDeviceID(deviceID); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("shellyws: New: a nil Option")
		}
		opt(&o)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	cfg, err := o.store.Load()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shellyws: stored config is invalid: %w", err)
	}
	c := &Component{
		id:     deviceID,
		opts:   o,
		wsOpts: o.wsOptions(),
		stored: cfg.Clone(),
		active: cfg.Clone(),
		state:  newStateBox(),
		queue:  newNotifyQueue(o.queueSize),
	}
	if err := c.auth.init(deviceID, o.authStore); err != nil {
		return nil, err
	}
	c.restart, c.restarted = context.WithCancelCause(context.Background())
	c.initWake()
	c.disp = o.dispatcher
	if c.disp == nil {
		c.disp = ownMethods{c}
	}
	return c, nil
}

// ID returns the device id the component sends as src.
func (c *Component) ID() string { return c.id }

// GetConfig returns the stored config, as Ws.GetConfig answers it. After
// SetConfig it is the new config, even before Restart applies it.
func (c *Component) GetConfig() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored.Clone()
}

// SetConfig validates cfg and stores it. Like Ws.SetConfig on a device, it
// takes effect at the next Restart; restartRequired is therefore always true
// on success. An invalid cfg is an *Error with CodeInvalidArgument and the
// stored config is left untouched.
func (c *Component) SetConfig(cfg Config) (restartRequired bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	return c.updateConfig(func(Config) (Config, error) { return cfg.Clone(), nil })
}

// updateConfig stores what change makes of the stored config, all under the
// lock so concurrent partial updates do not lose each other's keys.
func (c *Component) updateConfig(change func(Config) (Config, error)) (bool, error) {
	c.mu.Lock()
	next, err := change(c.stored.Clone())
	if err == nil {
		err = c.opts.store.Save(next)
		if err != nil {
			// The store's error names a file of the device: the wire gets
			// the generic *Error (AsError finds it), the log and the caller the cause.
			c.opts.logger.Error("shellyws: saving the config failed", "err", err)
			err = fmt.Errorf("%w: %w", Errorf(CodeInternal, "Failed to save config"), err)
		}
	}
	if err == nil {
		c.stored = next
	}
	c.mu.Unlock()
	if err != nil {
		return false, err
	}
	if f := c.opts.onConfigSaved; f != nil {
		f(next.Clone())
	}
	return true, nil
}

// Restart applies the stored config: the current connection, if any, is
// closed with status 1012 (service restart), a dial under way is abandoned,
// and Run dials again at once with the new config, or stays quiet if it is
// disabled. Before the 1012 the replies of the requests already dispatched
// on the connection go out (for at most the write timeout; requests that
// arrive meanwhile are not executed), so a handler may call Restart itself
// and still have its answer delivered. It returns at once. For
// Shelly.Reboot see Reboot.
func (c *Component) Restart() {
	c.mu.Lock()
	c.active = c.stored.Clone()
	w := c.restartLocked(ErrRestarted)
	c.mu.Unlock()
	w.stop(endRestart)
}

// restartLocked cancels the restart context with cause, replaces it, and
// returns the watch to stop, emptying the slot. The caller holds c.mu.
func (c *Component) restartLocked(cause error) restartWatch {
	c.restarted(cause)
	c.restart, c.restarted = context.WithCancelCause(context.Background())
	w := c.watch
	c.watch = restartWatch{}
	return w
}

// restartWatch is a dial's cancel or an outbound peer, stopped by the next
// Restart or Reboot.
type restartWatch struct {
	cancelDial context.CancelFunc
	p          *peer
}

// stop abandons the dial or stops the peer for reason, without waiting
// for its close handshake.
func (w restartWatch) stop(reason stopReason) {
	if w.cancelDial != nil {
		w.cancelDial()
	}
	if w.p != nil {
		w.p.stopSoon(reason)
	}
}

// watchRestart puts w in the slot Restart and Reboot stop, or stops it at
// once if restart, the context its attempt began with, has already ended.
func (c *Component) watchRestart(restart context.Context, w restartWatch) {
	c.mu.Lock()
	if restart.Err() == nil {
		c.watch = w
		c.mu.Unlock()
		return
	}
	// A Reboot after the Restart that ended restart drops, as a power cycle.
	down := c.down
	c.mu.Unlock()
	reason := endRestart
	if down || errors.Is(context.Cause(restart), errRebooting) {
		reason = endReboot
	}
	w.stop(reason)
}

// unwatchRestart empties the slot.
func (c *Component) unwatchRestart() {
	c.mu.Lock()
	c.watch = restartWatch{}
	c.mu.Unlock()
}

// errRebooting is the cause of the restart context Reboot cancels: stops
// that see it drop their connection instead of closing it.
var errRebooting = errors.New("shellyws: rebooting")

// Reboot restarts the device as a power cycle would, the way protocol
// section 11 describes Shelly.Reboot. It returns at once; while Run runs:
//
//   - the outbound connection is dropped without a close frame, and every
//     websocket client of every Handler of c is dropped the same way;
//   - the notification queue is emptied: nothing published before the
//     reboot, or while the device is down, is sent after it;
//   - until the boot is over, every Handler of c answers HTTP requests and
//     websocket handshakes 503 (code -114, "Rebooting"), standing in for a
//     web server that is not up yet (close the listener in WithOnReboot
//     for a device that is unreachable instead);
//   - the WithOnReboot callback is called, Run waits the boot time
//     (WithBootTime), calls WithOnBoot and dials at once, without back-off,
//     with the stored config; its first frame is a fresh NotifyFullStatus.
//     (Run here is Run or Start alike.)
//
// A Reboot while the device is down does nothing. Without Run, the device
// stays down until Run or Wake is called: either is the boot. On a sleeping
// device, Reboot during a Wake ends it at once as a power cycle does: no
// sleep event, the outbound connection and inbound clients dropped without
// a close frame, and Wake returns WakeInterrupted; WithOnReboot, the boot
// time and WithOnBoot are Run's, so the embedder waits its boot time before
// the next Wake. Handlers call it from AfterReply, so that their answer is
// on the wire first.
func (c *Component) Reboot() {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return
	}
	c.down = true
	c.active = c.stored.Clone()
	c.cutPowerLocked()
	c.power = poweredOff
	w := c.restartLocked(errRebooting)
	c.mu.Unlock()
	w.stop(endReboot)
	c.queue.clear()
	c.interruptWake(true)
}

// powerState returns the context that ends when the device next goes down,
// and whether it is down now.
func (c *Component) powerState() (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.power == nil {
		c.power, c.powerOff = context.WithCancel(context.Background())
	}
	return c.power, c.down
}

// poweredOff is the power context of a device that is down.
var poweredOff = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// cutPowerLocked ends the power context, if one was made, and forgets it:
// the next powerState makes a new one. The caller holds c.mu.
func (c *Component) cutPowerLocked() {
	if c.powerOff != nil {
		c.powerOff()
	}
	c.power, c.powerOff = nil, nil
}

// isDown reports whether a reboot waits for its boot.
func (c *Component) isDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// powerOn ends a boot: the device is up, with the stored config active.
func (c *Component) powerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = c.stored.Clone()
	if c.down {
		c.down = false
		c.power, c.powerOff = nil, nil // made again on demand
	}
}

func (c *Component) activeConfig() (Config, context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active.Clone(), c.restart
}

// Register adds the component's RPC methods, Ws.GetConfig, Ws.SetConfig,
// Ws.GetStatus and Shelly.SetAuth, to m. A Dispatcher that routes these
// methods itself can hand them to OwnMethods instead, with no Mux per
// component.
func (c *Component) Register(m *Mux) {
	m.HandleFunc("Ws.GetConfig", c.rpcGetConfig)
	m.HandleFunc("Ws.SetConfig", c.rpcSetConfig)
	m.HandleFunc("Ws.GetStatus", c.rpcGetStatus)
	m.HandleFunc(SetAuthMethod, c.rpcSetAuth)
}

// OwnMethods returns a Dispatcher of the component's own methods, the ones
// Register puts on a Mux (Ws.GetConfig, Ws.SetConfig, Ws.GetStatus,
// Shelly.SetAuth) plus a Shelly.ListMethods listing them. It holds no map:
// a fleet of thousands of devices in one process pays nothing per device
// for it, where a Mux each would cost a few KiB. Methods are matched
// case-insensitively; any other method is answered with CodeNoHandler.
func (c *Component) OwnMethods() Dispatcher { return ownMethods{c} }

func (c *Component) rpcGetConfig(context.Context, *Request) (any, error) {
	return c.GetConfig(), nil
}

func (c *Component) rpcSetConfig(_ context.Context, req *Request) (any, error) {
	restart, err := c.updateConfig(func(cur Config) (Config, error) {
		return MergeConfig(cur, req.Params)
	})
	if err != nil {
		return nil, err
	}
	return struct {
		RestartRequired bool `json:"restart_required"`
	}{restart}, nil
}

func (c *Component) rpcGetStatus(context.Context, *Request) (any, error) {
	return c.GetStatus(), nil
}

// ownMethods is the Dispatcher of a component given none: the Ws methods
// and Shelly.ListMethods, as a Mux with Register would answer them, without
// a Mux's map per device in a fleet of thousands.
type ownMethods struct{ c *Component }

func (o ownMethods) Dispatch(ctx context.Context, req *Request) (any, error) {
	switch m := req.Method; {
	case strings.EqualFold(m, "Ws.GetStatus"):
		return o.c.rpcGetStatus(ctx, req)
	case strings.EqualFold(m, "Ws.GetConfig"):
		return o.c.rpcGetConfig(ctx, req)
	case strings.EqualFold(m, "Ws.SetConfig"):
		return o.c.rpcSetConfig(ctx, req)
	case strings.EqualFold(m, SetAuthMethod):
		return o.c.rpcSetAuth(ctx, req)
	case strings.EqualFold(m, ListMethodsMethod):
		return struct {
			Methods []string `json:"methods"`
		}{[]string{ListMethodsMethod, SetAuthMethod, "Ws.GetConfig", "Ws.GetStatus", "Ws.SetConfig"}}, nil
	}
	return nil, Errorf(CodeNoHandler, "No handler for %s", req.Method)
}

// subscribe registers f to see every notification published from now on;
// the returned function unregisters it. publish works from a snapshot, so f
// may still be called once, concurrently, after unsubscribe returns; f must
// not block. Used by the inbound channels.
func (c *Component) subscribe(f func(method string, params []byte)) (unsubscribe func()) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if c.subs == nil {
		c.subs = make(map[int]func(string, []byte))
	}
	c.subSeq++
	id := c.subSeq
	c.subs[id] = f
	return func() {
		c.subsMu.Lock()
		defer c.subsMu.Unlock()
		delete(c.subs, id)
	}
}

func (c *Component) subscribers() []func(string, []byte) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if len(c.subs) == 0 {
		return nil
	}
	list := make([]func(string, []byte), 0, len(c.subs))
	for _, f := range c.subs {
		list = append(list, f)
	}
	return list
}

// macLen is the length of the MAC at the end of a device id.
const macLen = 12

// checkDeviceID returns an error unless id is <model>-<12 hex digits>, the
// model part made of ASCII letters, digits, '-' and '_', starting with a
// letter or digit.
func checkDeviceID(id string) error {
	bad := func(why string) error {
		return fmt.Errorf("shellyws: device id %q: %s; want <model>-<12 hex digits of the MAC>, e.g. shellyplus1pm-c049ef8cf4e0", id, why)
	}
	if len(id) < macLen+2 || id[len(id)-macLen-1] != '-' {
		return bad("no model part and '-' before 12 hex digits")
	}
	model, mac := id[:len(id)-macLen-1], id[len(id)-macLen:]
	if c := model[0]; c == '-' || c == '_' {
		return bad("the model part starts with a letter or digit")
	}
	for i := 0; i < len(mac); i++ {
		switch c := mac[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return bad("the MAC part is not 12 hex digits")
		}
	}
	for i := 0; i < len(model); i++ {
		switch c := model[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return bad("the model part may hold only ASCII letters, digits, '-' and '_' (before 12 hex digits)")
		}
	}
	return nil
}

// macFromID returns the MAC at the end of a valid id, upper-case, as
// sys.mac reports it; for the usual one-'-' ids it is what Home Assistant
// derives (src.split("-")[1].upper()).
func macFromID(id string) string {
	return strings.ToUpper(id[len(id)-macLen:])
}

// fullStatusParams builds the params of NotifyFullStatus: the embedder's
// status with "ws" filled in and "ts" first.
func (c *Component) fullStatusParams(ctx context.Context) ([]byte, error) {
	var status map[string]any
	if c.opts.fullStatus != nil {
		src, err := c.opts.fullStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("full status: %w", err)
		}
		status = make(map[string]any, len(src)+1)
		for k, v := range src {
			if k == "" {
				return nil, fmt.Errorf("full status: %w", errEmptyKey)
			}
			status[k] = v
		}
	} else {
		status = map[string]any{"sys": map[string]any{"mac": macFromID(c.id)}}
	}
	status[ComponentKey] = Status{Connected: true}
	return paramsWithTS(c.opts.now(), status)
}
