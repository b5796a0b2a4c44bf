package shellyws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/evws"
	"github.com/shellyws/shellyws/internal/redact"
	"github.com/shellyws/shellyws/internal/sslca"
)

// Subprotocol is the websocket subprotocol the device requests. Servers
// that do not echo it are accepted, as real devices accept them.
const Subprotocol = "json-rpc"

// ConnError describes why a connection attempt failed or a connection was
// lost. Its text never contains the server URL's query values or user info.
type ConnError struct {
	// Op is what ended the connection: "dial", "status" (the full status
	// could not be built), "read", "write", "ping" (no pong in time),
	// "restart" (Restart, InterruptWake), "reboot" (Reboot), "shutdown"
	// (Run's or Wake's context ended) or "sleep" (a wake ended; see
	// ErrAsleep).
	Op string
	// Server is the server URL with its user info and query values masked.
	Server string
	// HTTPStatus is the status of a refused handshake, or 0.
	HTTPStatus int
	// CloseCode is the close status the server sent, or -1.
	CloseCode websocket.StatusCode
	// Err is the cause, its text redacted.
	Err error
}

// Error implements error.
func (e *ConnError) Error() string {
	return fmt.Sprintf("shellyws: %s %s: %v", e.Op, e.Server, e.Err)
}

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error { return e.Err }

func (c *Component) connError(op, server string, httpStatus int, err error) *ConnError {
	return &ConnError{
		Op:         op,
		Server:     redact.URL(server),
		HTTPStatus: httpStatus,
		CloseCode:  websocket.CloseStatus(err),
		Err:        redact.ErrorFor(err, server),
	}
}

// tlsConfig returns the TLS settings ssl_ca asks for.
func (c *Component) tlsConfig(sslCA *string, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	mode := SSLCABuiltin
	if sslCA != nil {
		mode = *sslCA
	}
	if err := sslca.Apply(tc, mode, c.opts.rootCAs, c.opts.userCA); err != nil {
		return nil, err
	}
	return tc, nil
}

// wsOptions are the options of the component's outbound connections,
// made once by New: evws keeps a pointer to them per connection.
func (o *options) wsOptions() *evws.Options {
	return &evws.Options{
		Subprotocol:  Subprotocol,
		NetDial:      o.dialContext, // nil: a net.Dialer with a 30 s TCP keepalive
		ReadLimit:    o.readLimit,
		WriteTimeout: o.writeTimeout,
		CloseTimeout: closeGrace,
		PingInterval: o.pingInterval,
		PingTimeout:  o.pingTimeout,
	}
}

// dial opens a websocket to server, bounded by the dial timeout, and returns
// it not yet reading, or the HTTP status and headers of a refused
// handshake. The request is written by hand from the URL's host and
// request URI: user info is never sent (a device sends no auth headers;
// the firmware has no field for them), nor Origin, nor User-Agent, and no
// proxy of the environment is used. A redirect is a refusal. Every call of
// the dial hook has returned when dial does.
func (c *Component) dial(ctx context.Context, cfg Config) (*evws.Conn, int, http.Header, error) {
	server := *cfg.Server
	u, err := url.Parse(server)
	if err != nil {
		return nil, 0, nil, errors.New("invalid server URL")
	}
	var tc *tls.Config
	if u.Scheme == "wss" {
		if tc, err = c.tlsConfig(cfg.SSLCA, u.Hostname()); err != nil {
			return nil, 0, nil, err
		}
		if tc.InsecureSkipVerify {
			c.opts.logger.Warn("shellyws: TLS certificate verification is off (ssl_ca \"*\")",
				"server", redact.URL(server))
		}
	}
	dialCtx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	conn, err := evws.Dial(dialCtx, server, tc, c.wsOpts)
	if err != nil {
		var he *evws.HandshakeError
		if errors.As(err, &he) {
			return nil, he.StatusCode, he.Header, err
		}
		return nil, 0, nil, err
	}
	return conn, 0, nil, nil
}
