package mqtt

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"time"

	"github.com/shellyws/shellyws"
)

// Defaults, documented on the options that set them.
const (
	DefaultKeepAlive      = 60 * time.Second
	DefaultConnectTimeout = 20 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultHealthyAfter   = 10 * time.Second
	// DefaultOfflineQueue is how many notifications wait while the
	// client is disconnected, the oldest dropped first: the firmware
	// base's 5.
	DefaultOfflineQueue = 5
	// DefaultQueue bounds the notifications waiting while connected, for
	// a broker slower than the device.
	DefaultQueue = 25
	// DefaultMaxPending bounds the requests waiting to be served; more
	// are dropped.
	DefaultMaxPending = 16
)

// StatusSource gives the whole status of the device's components, for
// status_ntf and status_update. It is called on the client's own
// goroutines, never while the device publishes.
type StatusSource interface {
	// Keys returns every component key, e.g. "sys", "switch:0".
	Keys() []string
	// Status returns the whole status of component key, the value
	// Shelly.GetStatus holds under it.
	Status(key string) (json.RawMessage, error)
}

// Option configures a Client.
type Option func(*options)

type options struct {
	logger         *slog.Logger
	backoff        func(attempt int) time.Duration
	healthyAfter   time.Duration
	keepAlive      time.Duration
	connectTimeout time.Duration
	writeTimeout   time.Duration
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	rootCAs        *x509.CertPool
	userCA         func() ([]byte, error)
	status         StatusSource
}

func defaultOptions() options {
	return options{
		logger:         slog.New(slog.DiscardHandler),
		backoff:        shellyws.DefaultBackoff,
		healthyAfter:   DefaultHealthyAfter,
		keepAlive:      DefaultKeepAlive,
		connectTimeout: DefaultConnectTimeout,
		writeTimeout:   DefaultWriteTimeout,
		dial:           (&net.Dialer{}).DialContext,
	}
}

// WithLogger sets where connection events go (info) and dropped messages
// (debug); never a password. Default: nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithBackoff sets the policy between connection attempts, as
// shellyws.WithBackoff does: the wait before failed attempt n (from 1,
// counted again after a healthy connection). Default:
// shellyws.DefaultBackoff, 1 s doubling to 60 s, randomized, never giving
// up (section 1).
func WithBackoff(policy func(attempt int) time.Duration) Option {
	return func(o *options) {
		if policy != nil {
			o.backoff = policy
		}
	}
}

// WithHealthyAfter sets how long a connection must stay up before the
// back-off starts again from its first interval. Default:
// DefaultHealthyAfter (10 s).
func WithHealthyAfter(d time.Duration) Option {
	return func(o *options) { o.healthyAfter = d }
}

// WithKeepAlive sets the MQTT keep-alive. Default: DefaultKeepAlive (60 s,
// the firmware's).
func WithKeepAlive(d time.Duration) Option {
	return func(o *options) { o.keepAlive = d }
}

// WithConnectTimeout bounds a connection attempt, dial and CONNACK.
// Default: DefaultConnectTimeout (20 s).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.connectTimeout = d }
}

// WithWriteTimeout bounds each publish, from the write to its PUBACK.
// Default: DefaultWriteTimeout (10 s).
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) { o.writeTimeout = d }
}

// WithDialContext sets how the TCP connection to the broker is made (TLS,
// if any, is added on top). Default: a net.Dialer.
func WithDialContext(f func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) {
		if f != nil {
			o.dial = f
		}
	}
}

// WithRootCAs sets the built-in bundle ssl_ca "ca.pem" verifies against.
// Default (and nil): the system roots.
func WithRootCAs(p *x509.CertPool) Option {
	return func(o *options) { o.rootCAs = p }
}

// WithUserCA sets how the PEM bundle of ssl_ca "user_ca.pem" is loaded, at
// every connection attempt. Default: none, and such a config cannot
// connect.
func WithUserCA(f func() ([]byte, error)) Option {
	return func(o *options) { o.userCA = f }
}

// WithStatus sets where the whole status of components comes from, for
// status_ntf and status_update. Default: none; only the client's own
// "mqtt" status is published.
func WithStatus(s StatusSource) Option {
	return func(o *options) { o.status = s }
}
