package device

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Defaults of Options.
const (
	// DefaultRebootDelay is how long Shelly.Reboot waits when the request
	// has no delay_ms, about what a real device takes.
	DefaultRebootDelay = time.Second
	// DefaultBootTime is how long a rebooted device takes to come back
	// (protocol section 11).
	DefaultBootTime = time.Second
	// DefaultLoad is the power in watts the simulated appliance draws while
	// a switch or light is on.
	DefaultLoad = 60.0
)

// maxMinRebootDelay caps the least delay Shelly.Reboot honours; see
// Options.RebootDelay.
const maxMinRebootDelay = 500 * time.Millisecond

// Sources the simulator reports, as the firmware names them.
const (
	// SourceWS is the source of a change requested on a websocket, the
	// outbound one or an inbound client.
	SourceWS = "WS_in"
	// SourceHTTP is the source of a change requested over HTTP.
	SourceHTTP = "HTTP_in"
	// SourceInit is the source after boot and after Shelly.Reboot.
	SourceInit = "init"
	// SourceTimer is the source of the flip-back of toggle_after.
	SourceTimer = "timer"
)

// ESP32 reset reasons: power-on for the first boot, software reset after
// Shelly.Reboot.
const (
	resetPowerOn  = 1
	resetSoftware = 3
)

// Options configure a Device. The zero value is a Plus 1PM (the default
// profile) with a random id, its Outbound Websocket disabled, and no
// logging.
type Options struct {
	// Model is the kind of device this is: its info, components and
	// methods (NewModel, or package profile for real models). Required.
	Model *Model
	// ID is the device id: the src of every frame, the id of
	// Shelly.GetDeviceInfo and GET /shelly, and the auth realm. It must
	// be an id of the model (Model.CheckID): its prefix and MAC style,
	// e.g. "shellyplus1pm-c049ef8cf4e0"; New fails otherwise. sys.mac is
	// the upper-cased MAC part. Default: the model's prefix and a random
	// MAC.
	ID string
	// Store keeps the Outbound Websocket config across restarts.
	// Default: with StateDir a file there, else a shellyws.MemoryStore
	// holding shellyws.DefaultConfig().
	Store shellyws.ConfigStore
	// State keeps the rest of what the device stores (component configs,
	// sys.cfg_rev). Default: with StateDir a file there, else nothing:
	// the device keeps it in memory, across reboots but not across a
	// restart of the process.
	State Store
	// StateDir, if set, keeps everything the device stores in files named
	// after its id in this directory: <id>.ws.json (the Ws config),
	// <id>.auth.json (the password hash) and <id>.state.json (State), for
	// the stores not given. The directory must exist.
	StateDir string
	// Server, if set, enables the Outbound Websocket with this server URL
	// at New, stored as a Ws.SetConfig would store it. Default: the stored
	// config.
	Server string
	// Password, if set, is the device password at New (user admin, realm
	// the device id), stored as Shelly.SetAuth would store it: the inbound
	// channels then ask for it. Default: the stored state (none).
	Password string
	// UserCA loads the PEM bundle used with ssl_ca "user_ca.pem"
	// (shellyws.WithUserCA). Default: none.
	UserCA func() ([]byte, error)
	// RootCAs is the built-in bundle used with ssl_ca "ca.pem" and null
	// (shellyws.WithRootCAs). Default: the system roots.
	RootCAs *x509.CertPool
	// Logger receives the component's log and a debug line per request.
	// Default: no logging.
	Logger *slog.Logger
	// Extra are more component options, applied after the device's own,
	// e.g. shellyws.WithBackoff or shellyws.WithOnConnect. They must not
	// replace WithDispatcher, WithFullStatus or WithOnConfigSaved, which
	// the device sets. Default: none.
	Extra []shellyws.Option

	// RebootDelay is how long Shelly.Reboot waits when the request has no
	// delay_ms. A smaller delay_ms is raised to min(RebootDelay, 500 ms) so
	// that the response leaves before the connection closes. Tests set a
	// few milliseconds. Default: DefaultRebootDelay (1 s).
	RebootDelay time.Duration
	// BootTime is how long the device takes to come back after a reboot
	// (section 11): shellyws.WithBootTime, and for a sleeping device the
	// time to the wake after a reboot. Default: DefaultBootTime.
	BootTime time.Duration
	// Load is the power in watts drawn while a metering switch or light is
	// on; apower, current and aenergy follow from it. Default: a switch
	// the dump shows on keeps the dump's apower, others draw DefaultLoad.
	Load float64
	// PowerDeltas makes every switch change send a second NotifyStatus
	// with the new apower, current and aenergy, as a real device does
	// once its meter has settled. Default: off.
	PowerDeltas bool
	// Telemetry, when positive, makes readings (power, voltage, current,
	// temperature, humidity, illuminance, energy meters) drift and be
	// pushed as NotifyStatus at this period, as metering devices do.
	// Default: off; readings stay at the dump's values.
	Telemetry time.Duration
	// CoverTravel, when positive, is how long a cover takes from fully
	// closed to fully open and back, instead of its config's maxtime_open
	// and maxtime_close; tests set milliseconds.
	CoverTravel time.Duration
	// OnRequest, if set, is called after each request the component's
	// Dispatcher served, with the error it was answered with (nil on
	// success). It must not block for long. Default: none.
	OnRequest func(req *shellyws.Request, err error)
	// Now is the clock for uptime, unixtime, energy and notification
	// timestamps (it is passed on with shellyws.WithClock). Timers run on
	// real time. Default: time.Now.
	Now func() time.Time
	// OnDown, if set, is called when the device goes down: a reboot took
	// it down (its connections are dropped by then) or it fell asleep.
	// The simulator closes the device's -http listener there, so that
	// connections are refused as by a device that is off. Default: none.
	OnDown func()
	// OnUp, if set, is called when the device is up again: a reboot's
	// boot time is over, or a wake starts; before it dials. The
	// simulator listens again there. Default: none.
	OnUp func()

	// WakeupPeriod makes the device a sleeping (battery) device with this
	// time from falling asleep to the next wake (protocol section 9),
	// reported in whole seconds as sys.wakeup_period. 0 takes the model's
	// sys.wakeup_period: a model whose dump has one above 0 (Plus H&T,
	// Plus Smoke…) sleeps. Negative keeps any model always on.
	WakeupPeriod time.Duration
	// AwakeIdle and AwakeMax are a sleeping device's idle time and cap per
	// wake (shellyws.WithAwakeIdle, WithAwakeMax). Default: the library's,
	// 3 s and 60 s.
	AwakeIdle, AwakeMax time.Duration
	// FirstWake is when a sleeping device first wakes after Start: 0 at
	// once. A fleet spreads it over the period.
	FirstWake time.Duration
	// ClockSync is how long into a wake a sleeping device's clock gets
	// set, as by SNTP: before it "ts" counts seconds since the wake
	// (shellyws.WithBootClock) and sys.time and sys.unixtime are null.
	// Default: DefaultClockSync (1 s); negative: never set in a wake.
	ClockSync time.Duration
	// OnWake and OnSleep, if set, are called at the start and the end of
	// each wake of a sleeping device. Default: none.
	OnWake, OnSleep func(WakeInfo)

	// UpdateStable and UpdateBeta, if set, are the firmware versions
	// offered as updates (sys.available_updates, Shelly.CheckForUpdate,
	// protocol section 15.2); an empty string offers none of that stage.
	// Default (nil): what the model's dump offers.
	UpdateStable, UpdateBeta *string
	// OTATime is how long Shelly.Update takes from ota_begin to the reboot.
	// Default: DefaultOTATime (10 s).
	OTATime time.Duration
	// HTTPClient sends the device's own HTTP requests: webhooks and a
	// Shelly.Update by url. Default: a client with the firmware's 10 s
	// timeout, proxies from the environment not used.
	HTTPClient *http.Client

	// Channels turns on the UDP and MQTT channels (channels.go). Default:
	// neither.
	Channels ChannelOptions

	auth shellyws.AuthStore // from StateDir or Password
}

// Device is a simulated Shelly device of one profile: it answers the RPC
// methods of its model from the profile's dump with its own id, MAC and
// state, and sends the notifications a real device sends. Its methods are
// safe for concurrent use.
type Device struct {
	p           *Model
	m           *model
	id, mac     string
	comp        *shellyws.Component
	wsMethods   shellyws.Dispatcher // Ws.* and Shelly.SetAuth from the component, without a Mux per device
	log         *slog.Logger
	now         func() time.Time
	rebootDelay time.Duration
	bootTime    time.Duration
	telemetry   time.Duration
	coverTravel time.Duration
	powerDeltas bool
	load        float64
	loadSet     bool // Options.Load was given: it wins over the dump's apower
	seed        uint32
	store       Store // nil: nothing to persist
	onRequest   func(*shellyws.Request, error)
	onDown      func()
	onUp        func()

	// notifyMu orders state changes with their notifications: it is taken
	// before mu and held while the notification is queued, so a server
	// sees deltas in the order the changes happened.
	notifyMu sync.Mutex

	mu          sync.Mutex
	bootedAt    time.Time
	resetReason int
	cfgRev      int
	cfgOver     map[string]*jsonv.Object // configs SetConfig changed; nil until one did
	statusOver  map[string]jsonv.Patch   // readings Update set; nil until one did

	// The services' state (services.go), nil until first used.
	kvs             *kvsState
	hooks           *hookState
	scripts         *scriptState
	schedules       *scheduleState
	fw              *firmwareState
	chans           *channelState // UDP and MQTT (channels.go); nil without them
	otaTime         time.Duration
	http            *http.Client
	rootCAs         *x509.CertPool
	userCA          func() ([]byte, error)
	updates         [2]*string // -update-stable, -update-beta
	restartRequired bool
	tick            uint64      // telemetry periods so far
	parts           []part      // the stateful components, in key order
	running         bool        // Run is running
	ran             bool        // Run was called
	rebootPending   bool        // Shelly.Reboot answered, not fired yet
	rebootTimer     *time.Timer // armed once the answer is on the wire
	rebootAt        time.Time
	rebootRelease   func() // a sleeping device's HoldAwake until the reboot
	telemetryTimer  *time.Timer
	timers          sync.WaitGroup // timer callbacks Run must wait for

	// A sleeping device's cycle; nil for a device always on, which so
	// carries none of it. See sleep.go.
	*sleepCycle
}

// sleepCycle is the state of a sleeping device. Its timers and fields
// after onSleep are guarded by the device's mu.
type sleepCycle struct {
	period    time.Duration // between wakes
	firstWake time.Duration
	clockSync time.Duration
	onWake    func(WakeInfo)
	onSleep   func(WakeInfo)

	ctx                  context.Context // Start's
	stopped              chan struct{}   // closed when Start's context ended
	nextWake, clockTimer *time.Timer
	awake                bool
	wakeBoot, wakeCause  string // sys.wakeup_reason of the wake
}

// New returns a device built from o. It fails if the id is invalid or not
// an id of the profile, or if the store cannot be loaded.
func New(o Options) (*Device, error) {
	p := o.Model
	if p == nil {
		return nil, errors.New("device: Options.Model is required: build one with NewModel or take a real one from package profile")
	}
	if o.ID == "" {
		o.ID = RandomIDFor(p)
	}
	mac, err := macOf(o.ID)
	if err != nil {
		return nil, err
	}
	// One identity: src, Shelly.GetDeviceInfo's id (rendered from the
	// model's dump), the realm and sys.mac are one string only when the id
	// is in the model's style.
	if err := p.CheckID(o.ID); err != nil {
		return nil, err
	}
	if err := checkUpdates(&o); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RebootDelay <= 0 {
		o.RebootDelay = DefaultRebootDelay
	}
	if o.BootTime <= 0 {
		o.BootTime = DefaultBootTime
	}
	loadSet := o.Load > 0
	if !loadSet {
		o.Load = DefaultLoad
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.ID))
	m := modelOf(p)
	d := &Device{
		p:           p,
		m:           m,
		id:          o.ID,
		mac:         mac,
		log:         o.Logger.With("device", o.ID),
		now:         now,
		rebootDelay: o.RebootDelay,
		bootTime:    o.BootTime,
		telemetry:   o.Telemetry,
		coverTravel: o.CoverTravel,
		powerDeltas: o.PowerDeltas,
		load:        o.Load,
		loadSet:     loadSet,
		seed:        h.Sum32(),
		onRequest:   o.OnRequest,
		onDown:      o.OnDown,
		onUp:        o.OnUp,
		bootedAt:    now(),
		resetReason: resetPowerOn,
		cfgRev:      m.cfgRev,
		otaTime:     o.OTATime,
		http:        o.HTTPClient,
		rootCAs:     o.RootCAs,
		userCA:      o.UserCA,
		updates:     [2]*string{o.UpdateStable, o.UpdateBeta},
	}
	if d.otaTime <= 0 {
		d.otaTime = DefaultOTATime
	}
	if d.http == nil {
		d.http = defaultHTTP() // shared: a fleet holds one
	}
	d.parts = m.newParts(d)
	if err := d.openStores(&o); err != nil {
		return nil, err
	}
	if err := d.loadState(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	for _, s := range services {
		s.bootLocked(d, d.bootedAt)
	}
	d.mu.Unlock()
	for key, cfg := range d.cfgOver {
		if pt, ok := d.partOf(key).(configurable); ok {
			pt.configLocked(d, cfg)
		}
	}
	if err := d.openChannels(o.Channels); err != nil {
		return nil, err
	}
	opts := []shellyws.Option{
		// The library's lines say which device of a fleet they are about.
		shellyws.WithLogger(d.log),
		shellyws.WithDispatcher(shellyws.DispatcherFunc(d.dispatch)),
		shellyws.WithFullStatus(func(ctx context.Context) (map[string]any, error) { return d.fullStatus(ctx) }),
		shellyws.WithOnConfigSaved(d.configSaved),
		shellyws.WithBootTime(o.BootTime),
		shellyws.WithOnReboot(d.rebooted),
		shellyws.WithOnBoot(d.up),
	}
	if o.Store != nil {
		opts = append(opts, shellyws.WithConfigStore(o.Store))
	}
	if o.auth != nil {
		opts = append(opts, shellyws.WithAuthStore(o.auth))
	}
	if o.UserCA != nil {
		opts = append(opts, shellyws.WithUserCA(o.UserCA))
	}
	if o.RootCAs != nil {
		opts = append(opts, shellyws.WithRootCAs(o.RootCAs))
	}
	if o.Now != nil {
		opts = append(opts, shellyws.WithClock(o.Now))
	}
	if period := wakeupPeriod(p, o.WakeupPeriod); period > 0 {
		d.sleepCycle = &sleepCycle{
			period:    period,
			firstWake: max(o.FirstWake, 0),
			clockSync: o.ClockSync,
			onWake:    o.OnWake,
			onSleep:   o.OnSleep,
			wakeBoot:  BootPowerOn,
			wakeCause: CauseUndefined,
		}
		if d.clockSync == 0 {
			d.clockSync = DefaultClockSync
		}
		opts = append(opts, shellyws.WithBootClock())
		// Zero is the library's default here; the library refuses it.
		if o.AwakeIdle > 0 {
			opts = append(opts, shellyws.WithAwakeIdle(o.AwakeIdle))
		}
		if o.AwakeMax > 0 {
			opts = append(opts, shellyws.WithAwakeMax(o.AwakeMax))
		}
	}
	opts = append(opts, o.Extra...)
	comp, err := shellyws.New(d.id, opts...)
	if err != nil {
		return nil, err
	}
	d.comp = comp
	d.wsMethods = comp.OwnMethods()
	return d, nil
}

// defaultHTTP is the client of devices given none: the firmware's 10 s
// timeout, no proxy from the environment (a device talks directly).
var defaultHTTP = sync.OnceValue(func() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
})

// openStores fills o's stores from StateDir and applies Server and
// Password to them.
func (d *Device) openStores(o *Options) error {
	if o.StateDir != "" {
		base := filepath.Join(o.StateDir, d.id)
		if o.Store == nil {
			o.Store = shellyws.NewFileStore(base + ".ws.json")
		}
		if o.State == nil {
			o.State = NewFileStore(base + ".state.json")
		}
		o.auth = shellyws.NewFileAuthStore(base + ".auth.json")
	}
	d.store = o.State
	if o.Server != "" {
		if o.Store == nil {
			o.Store = shellyws.NewMemoryStore(shellyws.DefaultConfig())
		}
		cfg, err := o.Store.Load()
		if err != nil {
			return err
		}
		server := o.Server
		cfg.Enable, cfg.Server = true, &server
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("device %s: Options.Server: %w", d.id, err)
		}
		if err := o.Store.Save(cfg); err != nil {
			return err
		}
	}
	if o.Password != "" {
		if o.auth == nil {
			o.auth = shellyws.NewMemoryAuthStore(shellyws.AuthConfig{})
		}
		want := shellyws.PasswordAuth(d.id, o.Password)
		if cur, err := o.auth.Load(); err != nil || cur != want {
			if err := o.auth.Save(want); err != nil {
				return err
			}
		}
	}
	return nil
}

// wakeupPeriod is the period of a device of p given o's WakeupPeriod.
func wakeupPeriod(p *Model, o time.Duration) time.Duration {
	switch {
	case o < 0:
		return 0
	case o > 0:
		return o
	}
	return p.WakeupPeriod()
}

// macOf checks id, "<prefix>-<12 hex digits>", and returns its MAC in
// upper case.
func macOf(id string) (string, error) {
	if len(id) < 14 || id[len(id)-13] != '-' {
		return "", fmt.Errorf("device id %q: want <model>-<12 hex digits>, e.g. %s-c049ef8cf4e0", id, IDPrefix)
	}
	for _, c := range id[:len(id)-13] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", fmt.Errorf("device id %q: the model part may hold only letters, digits, '-' and '_'", id)
		}
	}
	mac := id[len(id)-12:]
	for _, c := range mac {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("device id %q: want 12 hex digits after the last '-'", id)
		}
	}
	return strings.ToUpper(mac), nil
}

// ID returns the device id.
func (d *Device) ID() string { return d.id }

// MAC returns the MAC the device reports as sys.mac, upper-case.
func (d *Device) MAC() string { return d.mac }

// Model returns the kind of device this is.
func (d *Device) Model() *Model { return d.p }

// BootTime returns how long the device takes to come back after a reboot.
func (d *Device) BootTime() time.Duration { return d.bootTime }

// Component returns the device's Outbound Websocket component, for its
// config, state and notifications.
func (d *Device) Component() *shellyws.Component { return d.comp }

// Dispatch serves req as the device does on every channel; see also
// HandleSim for the simulator's control methods.
func (d *Device) Dispatch(ctx context.Context, req *shellyws.Request) (any, error) {
	return d.dispatch(ctx, req)
}

// Methods returns the names Shelly.ListMethods lists, shared by every
// device of the profile: the caller must not change the slice.
func (d *Device) Methods() []string { return d.m.methods }

// beginLocked marks the device running, once: a device runs one life, as
// Component.Run does. The caller holds d.mu.
func (d *Device) beginLocked() error {
	if d.ran {
		return shellyws.ErrAlreadyRunning
	}
	d.ran, d.running = true, true
	return nil
}

// Run runs the device until ctx ends: the component's connection and the
// device's timers (Shelly.Reboot's delay, toggle_after, cover movement,
// telemetry); a sleeping device runs its wake cycle. It is Start followed
// by Wait, and returns after everything it started has exited. It may be
// called once; a second call returns shellyws.ErrAlreadyRunning.
func (d *Device) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		return err
	}
	d.Wait()
	return nil
}

// Start runs the device until ctx ends, as Run does, without a goroutine
// of its own: a device that is always on runs its component with
// shellyws.Component.Start (an idle connected device holds no goroutine)
// and its timers; a sleeping device is woken by a timer (after
// Options.FirstWake, then a period after each sleep), its wake running on
// the timer's goroutine, and between wakes holds only its state and one
// timer. Wait waits for the end. A second call, or a call after Run,
// returns shellyws.ErrAlreadyRunning.
func (d *Device) Start(ctx context.Context) error {
	if d.sleeping() {
		return d.startSleeping(ctx)
	}
	d.mu.Lock()
	if err := d.beginLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	if d.telemetry > 0 {
		d.telemetryTimer = d.startTimerLocked(d.telemetry, d.telemetryTick)
	}
	d.armSchedulesLocked()
	d.timers.Add(1) // for stop: Wait waits for it
	d.mu.Unlock()

	d.bootChannelsCtx(ctx)
	d.channelsUp()
	if err := d.comp.Start(ctx); err != nil {
		d.stop()
		return err
	}
	context.AfterFunc(ctx, func() {
		d.comp.Wait() // its connection closed with 1001 first
		d.stop()
	})
	return nil
}

// stop ends a device that is always on once its component has: the
// channels, then the timers and the parts' hardware.
func (d *Device) stop() {
	defer d.timers.Done()
	d.channelsDown()
	d.mu.Lock()
	d.running = false
	d.stopRebootLocked()
	d.stopTimerLocked(d.telemetryTimer)
	d.telemetryTimer = nil
	for _, pt := range d.parts {
		pt.stopLocked(d)
	}
	for _, s := range services {
		s.stopLocked(d)
	}
	d.mu.Unlock()
}

// startTimerLocked runs fire after delay on a timer Run waits for. fire must
// lock d.mu and check that the timer is still the current one: it may have
// been replaced while fire waited for the lock. The caller holds d.mu and
// has checked d.running.
func (d *Device) startTimerLocked(delay time.Duration, fire func(self *time.Timer)) *time.Timer {
	d.timers.Add(1)
	var self *time.Timer
	self = time.AfterFunc(delay, func() {
		defer d.timers.Done()
		// The caller assigns self while holding d.mu; taking it here
		// makes a timer that fires at once still see the assignment.
		d.mu.Lock()
		t := self
		d.mu.Unlock()
		fire(t)
	})
	return self
}

// stopTimerLocked stops t; a timer that had not fired yet will never call
// its Done, so it is done here.
func (d *Device) stopTimerLocked(t *time.Timer) {
	if t != nil && t.Stop() {
		d.timers.Done()
	}
}

// errNotRunning answers requests that need timers while Run is not running.
var errNotRunning = shellyws.Errorf(shellyws.CodeUnavailable, "Device is not running")

// notify queues deltas in order; the caller holds d.notifyMu but not d.mu,
// so nothing the component does while publishing can deadlock with the
// device.
func (d *Device) notify(deltas ...map[string]any) {
	for _, delta := range deltas {
		if len(delta) == 0 {
			continue
		}
		if err := d.comp.NotifyStatus(delta); err != nil {
			d.log.Error("simulator: NotifyStatus failed", "err", err)
		}
	}
}

// configSaved runs after Ws.SetConfig (or Component.SetConfig) stored a new
// config: as for every component (protocol section 15.1) sys.cfg_rev goes
// up, and the server hears of it with a sys delta and a config_changed
// event; a Ws change takes effect at the next restart.
func (d *Device) configSaved(shellyws.Config) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	rev := d.cfgRev + 1
	if doc, err := d.stateLocked(); err == nil {
		doc.CfgRev = rev
		_ = d.saveLocked(doc) // logged; the Ws config itself is stored
	}
	d.cfgRev = rev
	d.restartRequired = true
	d.mu.Unlock()
	d.notify(map[string]any{"sys": map[string]any{"cfg_rev": rev, "restart_required": true}})
	d.configChanged(shellyws.ComponentKey, true, rev)
}

// scheduleReboot arms the Shelly.Reboot timer once the answer is on the
// wire (shellyws.AfterReply), so the answer always leaves before anything
// drops. A sleeping device stays awake until the reboot fires.
func (d *Device) scheduleReboot(ctx context.Context, delay time.Duration) error {
	floor := min(d.rebootDelay, maxMinRebootDelay)
	if delay < floor {
		delay = floor
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return errNotRunning
	}
	if d.rebootPending {
		left := max(time.Until(d.rebootAt), 0)
		return shellyws.Errorf(shellyws.CodeFailedPrecondition, "shutting down in %d ms", left.Milliseconds())
	}
	d.rebootPending = true
	d.rebootAt = time.Now().Add(delay)
	if d.sleeping() {
		d.rebootRelease = d.comp.HoldAwake()
	}
	arm := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.running && d.rebootPending && d.rebootTimer == nil {
			d.rebootTimer = d.startTimerLocked(max(time.Until(d.rebootAt), 0), d.reboot)
		}
	}
	if !shellyws.AfterReply(ctx, arm) {
		// Not served by a channel (Dispatch called directly): nothing to
		// wait for.
		d.rebootTimer = d.startTimerLocked(delay, d.reboot)
	}
	return nil
}

// stopRebootLocked forgets a pending reboot when Run ends.
func (d *Device) stopRebootLocked() {
	d.stopTimerLocked(d.rebootTimer)
	d.rebootTimer, d.rebootPending = nil, false
	if d.rebootRelease != nil {
		d.rebootRelease()
		d.rebootRelease = nil
	}
}

// reboot is the Shelly.Reboot timer firing. A device that is always on
// reboots its component (shellyws.Component.Reboot): every connection
// drops, the queue is emptied, and after the boot time it dials with the
// stored config; rebooted and up run on the way. A sleeping device ends its
// wake instead and wakes again after the boot time (see sleep.go).
func (d *Device) reboot(self *time.Timer) {
	d.mu.Lock()
	if d.rebootTimer != self || !d.running {
		d.mu.Unlock()
		return
	}
	d.rebootTimer, d.rebootPending = nil, false
	release := d.rebootRelease
	d.rebootRelease = nil
	sleeping := d.sleeping()
	d.mu.Unlock()
	d.log.Info("simulator: rebooting")
	if !sleeping {
		d.comp.Reboot()
		return
	}
	d.rebootSleeping()
	if release != nil {
		release()
	}
}

// rebooted is the component's WithOnReboot: the connections are gone; RAM
// is lost and the device is unreachable until up.
func (d *Device) rebooted() {
	d.channelsDown() // a clean stop: MQTT says online false
	d.Boot()
	if d.onDown != nil {
		d.onDown()
	}
}

// up is the component's WithOnBoot, and the start of every wake.
func (d *Device) up() {
	d.channelsUp()
	if d.onUp != nil {
		d.onUp()
	}
}

// Boot resets what a device keeps in RAM, as a restart does: a new boot
// time (sys.uptime restarts at 0), sys.reset_reason 3 (software restart)
// on models whose sys reports it, restart_required false, every output
// restored with source "init", movements and toggle_after timers stopped,
// readings back at the dump's values. Stored config (ws config, cfg_rev)
// persists. Call it when the device comes back from a reboot.
func (d *Device) Boot() {
	d.notifyMu.Lock()
	d.mu.Lock()
	d.bootedAt = d.now()
	d.resetReason = resetSoftware
	d.restartRequired = false
	d.tick = 0
	var hooks []func()
	for _, s := range services {
		s.stopLocked(d)
		s.bootLocked(d, d.bootedAt)
	}
	for _, pt := range d.parts {
		pt.stopLocked(d)
		pt.bootLocked(d)
		if s, ok := pt.(*Switch); ok && s.onOutput != nil {
			f, on := s.onOutput, s.output
			hooks = append(hooks, func() { f(on) })
		}
	}
	d.mu.Unlock()
	d.notifyMu.Unlock()
	// The relays are set as initial_state says: tell the hardware.
	for _, f := range hooks {
		f()
	}
}

// sourceOf is the source a change asked for by req reports: HTTP_in over
// HTTP, UDP_in over UDP, MQTT over MQTT, schedule for a schedule job's
// call, WS_in on a websocket (outbound or inbound).
func sourceOf(req *shellyws.Request) string {
	switch {
	case req.Channel == shellyws.ChannelHTTP:
		return SourceHTTP
	case req.Channel == shellyws.ChannelUDP:
		return SourceUDP
	case req.Channel == shellyws.ChannelMQTT:
		return SourceMQTT
	case req.Channel == 0 && req.Src == SourceSchedule:
		return SourceSchedule // a job's call (schedule.go)
	}
	return SourceWS
}
