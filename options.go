package shellyws

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"time"

	"github.com/shellyws/shellyws/internal/redact"
)

// Option configures a Component. Options set behavioural dependencies; the
// wire-visible settings live in Config. A value that would make a broken
// device (a zero timeout, an empty queue, ...) makes New fail with an error
// naming the option; nil functions and interfaces mean the default, as each
// option says.
type Option func(*options)

// StatusFunc returns the whole device status, the object Shelly.GetStatus
// answers, keyed by component ("sys", "switch:0", ...). The component fills in
// its own "ws" entry. It is called once per connection, to build the
// NotifyFullStatus that opens it; ctx ends with the connection. An error, or
// an empty key, closes that connection with 1011 and it is dialled again.
type StatusFunc func(ctx context.Context) (map[string]any, error)

type options struct {
	dispatcher    Dispatcher
	store         ConfigStore
	authStore     AuthStore // see WithAuthStore in auth.go
	logger        *slog.Logger
	backoff       func(attempt int) time.Duration
	healthyAfter  time.Duration
	rootCAs       *x509.CertPool
	userCA        func() ([]byte, error)
	dialContext   func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout   time.Duration
	writeTimeout  time.Duration
	pingInterval  time.Duration
	pingTimeout   time.Duration
	readLimit     int64
	maxInFlight   int
	queueSize     int
	fullStatus    StatusFunc
	onConnect     func()
	onDisconnect  func(error)
	onConfigSaved func(Config)
	now           func() time.Time // "ts"; WithBootClock wraps it (wake.go)
	clock         func() time.Time // WithClock's own, for nonces and lockouts
	serverBackoff func(retryAfter time.Duration) time.Duration
	bootTime      time.Duration
	onReboot      func()
	onBoot        func()

	// The wake cycle of a sleeping device; see wake.go.
	awakeIdle, awakeMax time.Duration
	bootClock           bool
}

// Defaults, stated in the docs of the options that set them.
const (
	defaultHealthyAfter = 10 * time.Second
	defaultDialTimeout  = 20 * time.Second
	defaultWriteTimeout = 10 * time.Second
	defaultPingInterval = 30 * time.Second
	defaultPingTimeout  = 10 * time.Second
	defaultReadLimit    = 1 << 20
	defaultMaxInFlight  = 16
	defaultQueueSize    = 25
	defaultBootTime     = time.Second
)

func defaultOptions() options {
	return options{
		logger:       slog.New(slog.DiscardHandler),
		backoff:      DefaultBackoff,
		healthyAfter: defaultHealthyAfter,
		dialTimeout:  defaultDialTimeout,
		writeTimeout: defaultWriteTimeout,
		pingInterval: defaultPingInterval,
		pingTimeout:  defaultPingTimeout,
		readLimit:    defaultReadLimit,
		maxInFlight:  defaultMaxInFlight,
		queueSize:    defaultQueueSize,
		now:          time.Now,
		bootTime:     defaultBootTime,
		awakeIdle:    defaultAwakeIdle,
		awakeMax:     defaultAwakeMax,
	}
}

// check returns an error naming the first option given a value that would
// make a broken device; values with a documented meaning are filled in.
func (o *options) check() error {
	switch {
	case isNilInterface(o.dispatcher):
		return errors.New("shellyws: WithDispatcher: a typed nil dispatcher would answer every request 500")
	case o.healthyAfter < 0:
		return fmt.Errorf("shellyws: WithHealthyAfter(%v): must not be negative", o.healthyAfter)
	case o.dialTimeout <= 0:
		return fmt.Errorf("shellyws: WithDialTimeout(%v): must be positive, or no dial could succeed", o.dialTimeout)
	case o.writeTimeout <= 0:
		return fmt.Errorf("shellyws: WithWriteTimeout(%v): must be positive, or no frame could be sent", o.writeTimeout)
	case o.pingInterval < 0:
		return fmt.Errorf("shellyws: WithPing(%v, %v): the interval must not be negative", o.pingInterval, o.pingTimeout)
	case o.pingInterval > 0 && o.pingTimeout <= 0:
		return fmt.Errorf("shellyws: WithPing(%v, %v): the timeout must be positive", o.pingInterval, o.pingTimeout)
	case o.readLimit <= 0:
		return fmt.Errorf("shellyws: WithReadLimit(%d): must be positive", o.readLimit)
	case o.maxInFlight < 1:
		return fmt.Errorf("shellyws: WithMaxInFlight(%d): must be at least 1", o.maxInFlight)
	case o.queueSize < 1:
		return fmt.Errorf("shellyws: WithQueueSize(%d): must be at least 1, or every notification would be dropped", o.queueSize)
	case o.bootTime < 0:
		return fmt.Errorf("shellyws: WithBootTime(%v): must not be negative", o.bootTime)
	case o.now == nil:
		return errors.New("shellyws: WithClock(nil): a clock is needed")
	case o.awakeIdle <= 0:
		return fmt.Errorf("shellyws: WithAwakeIdle(%v): must be positive, or a wake would end before anyone could ask", o.awakeIdle)
	case o.awakeMax <= 0:
		return fmt.Errorf("shellyws: WithAwakeMax(%v): must be positive, or a wake would end at once", o.awakeMax)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	o.logger = redact.Logger(o.logger) // secrets never reach the log, whoever logs them
	if o.backoff == nil {
		o.backoff = DefaultBackoff
	}
	if o.serverBackoff == nil {
		o.serverBackoff = DefaultServerBackoff
	}
	if o.store == nil {
		o.store = NewMemoryStore(DefaultConfig())
	}
	return nil
}

// isNilInterface reports whether v holds a nil pointer, func, map, slice or
// channel: an interface that is not nil but cannot be called.
func isNilInterface(v any) bool {
	if v == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// maxBackoff is DefaultBackoff's cap, and the wait of a policy that would
// give up.
const maxBackoff = time.Minute

// DefaultBackoff is the reconnect policy: ExponentialBackoff(time.Second,
// time.Minute), doubling from 1 s to a 60 s cap, randomized by ±50 %.
func DefaultBackoff(attempt int) time.Duration { return defaultBackoff(attempt) }

var defaultBackoff = ExponentialBackoff(time.Second, maxBackoff)

// ExponentialBackoff returns a reconnect policy for WithBackoff: the wait
// before attempt n (from 1) is initial doubled n-1 times, at most maxDelay,
// then randomized by ±50 % so that a fleet restarted together does not
// retry in lock-step. An initial below 1 ms is taken as 1 ms and a
// maxDelay below initial as initial, so no policy it makes can spin. The
// policy keeps no state and is safe for concurrent use.
func ExponentialBackoff(initial, maxDelay time.Duration) func(attempt int) time.Duration {
	initial = max(initial, time.Millisecond)
	maxDelay = max(maxDelay, initial)
	return func(attempt int) time.Duration {
		d := initial
		for i := 1; i < attempt && d < maxDelay; i++ {
			d *= 2
		}
		d = min(d, maxDelay)
		return d/2 + time.Duration(rand.Int64N(int64(d)+1))
	}
}

// WithDispatcher sets what answers the server's requests. Register the
// component's own methods on it with Component.Register. Default: the
// component's own methods, Ws.GetConfig, Ws.SetConfig, Ws.GetStatus and
// Shelly.SetAuth, and Shelly.ListMethods listing them, answered as a Mux
// with Register would (nil means that default; a typed nil makes New fail).
func WithDispatcher(d Dispatcher) Option { return func(o *options) { o.dispatcher = d } }

// WithConfigStore sets where the config is kept across restarts. Default
// (and nil): a MemoryStore holding DefaultConfig().
func WithConfigStore(s ConfigStore) Option { return func(o *options) { o.store = s } }

// WithLogger sets the logger. Everything the component logs goes through
// a redacting handler first: URLs lose their user info and query values,
// values of secret-named attributes (password, ha1, response, token, ...)
// and 64-hex-digit runs are masked. Default (and nil): no logging.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBackoff sets the reconnect policy: delay returns the wait before the
// next attempt, given how many waits in a row this is (1 for the first).
// The count starts again after a connection proved healthy (see
// WithHealthyAfter), after a restart and after a reboot, never after a
// failure, so a server that accepts and drops at once cannot cause a tight
// loop. A negative wait, from a policy that would give up, is taken as
// 60 s: a device never gives up. delay is called by the component's run
// (Run or Start), one call at a time; one
// shared by many components must be safe for concurrent use, as those of
// ExponentialBackoff are. It does not set the wait after the server asked
// for a longer back-off (see WithServerBackoff). Default (and nil):
// DefaultBackoff. Tests use shellywstest.FastBackoff for reconnects in
// milliseconds.
func WithBackoff(delay func(attempt int) time.Duration) Option {
	return func(o *options) { o.backoff = delay }
}

// WithHealthyAfter sets how long a connection must stay up before the
// backoff is reset, so a server that accepts and drops at once cannot cause a
// tight loop; 0 resets it after every connection that came up, a negative
// value makes New fail. A 1008 or 1013 close of a connection that was up
// this long is an ordinary drop, not a request for the longer back-off of
// WithServerBackoff. Default: 10 s.
func WithHealthyAfter(d time.Duration) Option { return func(o *options) { o.healthyAfter = d } }

// WithRootCAs sets the built-in CA bundle used for ssl_ca "ca.pem" and null.
// Default (and nil): the system roots.
func WithRootCAs(pool *x509.CertPool) Option { return func(o *options) { o.rootCAs = pool } }

// WithUserCA sets where the user CA comes from, for ssl_ca "user_ca.pem".
// load is called at every dial and returns PEM bytes, as a device reads the
// file uploaded with Shelly.PutUserCA. Default: no user CA, so a dial with
// "user_ca.pem" fails (and is retried) with ErrNoUserCA; nil is that default.
func WithUserCA(load func() ([]byte, error)) Option { return func(o *options) { o.userCA = load } }

// WithDialContext sets how TCP connections are made, for custom transports
// and tests. dial is called on a short-lived goroutine of Run's (or Start's;
// at most one at a time per component) or on Wake's goroutine, never after
// Run or Wake returned (or Wait, after Start), and must honour ctx: it ends
// at the dial timeout, when Run's or Wake's context ends, on Reboot, on
// Restart during Run and at the cap of a wake, and the caller waits for
// dial to return. A conn it returns that
// offers SyscallConn (as *net.TCPConn does) is read through its socket by
// the process's one poller, so a wrapper must not change the bytes it
// reads; one without is read by a goroutine of its own. Default (and nil):
// a net.Dialer with a 30 s TCP keepalive.
func WithDialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dialContext = dial }
}

// WithDialTimeout bounds one connection attempt: TCP, TLS and the websocket
// handshake together; it must be positive. Default: 20 s.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithWriteTimeout bounds each frame written; a write that times out drops
// the connection; it must be positive. Default: 10 s.
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithPing sets the keepalive (protocol section 1): the device answers the
// server's pings, and sends a ping of its own only when nothing at all (no
// frame, no ping, no pong) has arrived from the server for interval, made
// up to two grains of 1/256 of it (at most 100 ms each) longer: one so
// that a server pinging on the same interval, a little late, is not raced,
// one so that the pings of many connections in one process go out
// together. A device whose server pings or talks so sends none. When
// nothing arrives within timeout of that ping the connection is dropped and
// redialled, so a half-open connection is noticed within interval+timeout
// (plus those grains) of the last thing heard: within two intervals when
// timeout is at most interval less 1/128 of it, as the defaults are. The
// same holds for an inbound websocket client (Handler). While every
// in-flight slot is taken (see WithMaxInFlight) the ping waits: the pong
// could not be read. An interval of 0 disables the device's own pings (it
// still answers the server's) and timeout is then ignored; a negative
// interval, or a timeout that is not positive with pings on, makes New
// fail. Default: an interval of 30 s and a timeout of 10 s.
func WithPing(interval, timeout time.Duration) Option {
	return func(o *options) { o.pingInterval, o.pingTimeout = interval, timeout }
}

// WithReadLimit sets the largest frame accepted from the server; a larger
// one closes the connection with status 1009, as soon as its header
// announces it, and the device redials.
// It must be positive. Default: 1 MiB, room for any real request.
func WithReadLimit(n int64) Option { return func(o *options) { o.readLimit = n } }

// WithMaxInFlight bounds how many requests of one connection are dispatched
// at once; while all slots are taken the device stops reading (one more
// request read waits for a slot), pushing back on the server. It must be
// at least 1. Default: 16.
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithQueueSize bounds the notifications kept while disconnected or while
// the server reads slowly. When full, the oldest is dropped and counted in
// Stats.Dropped, as the firmware does. It must be at least 1: the queue is
// also how notifications reach a live connection. Default: 25, the
// firmware's queue length.
func WithQueueSize(n int) Option { return func(o *options) { o.queueSize = n } }

// WithFullStatus sets the source of the NotifyFullStatus sent first on every
// connection. Default: a status holding only "sys": {"mac": ...} (derived
// from the device id) and the component's own "ws"; nil is that default.
func WithFullStatus(f StatusFunc) Option { return func(o *options) { o.fullStatus = f } }

// WithOnConnect sets a function called after each connection is up and its
// NotifyFullStatus sent. Callbacks run in order on a goroutine of their own,
// never under a library lock, so a slow one delays only later callbacks.
// Default (and nil): none.
func WithOnConnect(f func()) Option { return func(o *options) { o.onConnect = f } }

// WithOnDisconnect sets a function called exactly once per lost connection
// with the cause (failed dials are in LastError and the log, not here). It
// runs like WithOnConnect's. Default (and nil): none.
func WithOnDisconnect(f func(err error)) Option { return func(o *options) { o.onDisconnect = f } }

// WithOnConfigSaved sets a function called after a new config was stored by
// SetConfig or Ws.SetConfig, with that config; a device uses it to bump
// sys.cfg_rev and emit a config_changed event. It runs on the caller's
// goroutine after the component's lock is released. Default (and nil): none.
func WithOnConfigSaved(f func(Config)) Option { return func(o *options) { o.onConfigSaved = f } }

// WithClock sets the clock used for notification timestamps, connection
// health and, on the inbound channels, nonce lifetimes and the
// authentication lockout; nil makes New fail. WithBootClock replaces it for
// timestamps only, until SetClockSynced. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithServerBackoff sets the wait after the server asked for a longer
// back-off (a handshake refused with 429 or 503, or a close with 1008 or
// 1013 of a connection that had not been up for WithHealthyAfter; protocol
// section 12), which Run logs as a warning with the wait. f gets the Retry-After of a refused handshake,
// capped at 300 s, or 0 when there was none, and returns the wait before the
// next attempt; the normal backoff is left as it was. Tests pass a function
// returning milliseconds. Default (and nil): DefaultServerBackoff.
func WithServerBackoff(f func(retryAfter time.Duration) time.Duration) Option {
	return func(o *options) { o.serverBackoff = f }
}

// WithBootTime sets how long the device stays down after Reboot before it
// comes back and dials; 0 brings it back at once, a negative value makes
// New fail. Default: 1 s.
func WithBootTime(d time.Duration) Option { return func(o *options) { o.bootTime = d } }

// WithOnReboot sets a function called when Reboot took the device down,
// once its connections are dropped: an embedder closes its inbound
// listener, resets its uptime and sets its reset reason there. It runs on
// a goroutine of Run's (or Start's), which waits for it before the boot
// time starts. Default (and nil): none.
func WithOnReboot(f func()) Option { return func(o *options) { o.onReboot = f } }

// WithOnBoot sets a function called when the device comes back from a
// reboot, after the boot time and before Run dials: an embedder opens its
// listener again there. It runs like WithOnReboot's. Default (and nil): none.
func WithOnBoot(f func()) Option { return func(o *options) { o.onBoot = f } }
