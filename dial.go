package shellyws

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/redact"
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
	switch mode {
	case SSLCABuiltin:
		tc.RootCAs = c.opts.rootCAs // nil means the system roots
	case SSLCAUser:
		if c.opts.userCA == nil {
			return nil, fmt.Errorf("%w: ssl_ca is %q but none was provided", ErrNoUserCA, SSLCAUser)
		}
		pem, err := c.opts.userCA()
		if err != nil {
			return nil, fmt.Errorf("%w: loading it: %w", ErrNoUserCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: it holds no PEM certificate", ErrNoUserCA)
		}
		tc.RootCAs = pool
	case SSLCAInsecure:
		tc.InsecureSkipVerify = true
	default:
		return nil, fmt.Errorf("shellyws: invalid ssl_ca %q", mode)
	}
	return tc, nil
}

// dialed is an outbound websocket just opened.
type dialed struct {
	conn *websocket.Conn
	raw  net.Conn // the TCP connection beneath it
	// heard is set to mono() by every ping and pong from the server; the
	// session's peer keeps it up to date for frames too.
	heard *atomic.Int64
}

// dial opens a websocket to server, bounded by the dial timeout, and returns
// it with the TCP connection beneath it, or the HTTP status and headers of a
// refused handshake. Every goroutine it starts that calls user code has
// ended when it returns.
func (c *Component) dial(ctx context.Context, cfg Config) (dialed, int, http.Header, error) {
	server := *cfg.Server
	u, err := url.Parse(server)
	if err != nil {
		return dialed{}, 0, nil, errors.New("invalid server URL")
	}
	transport := &http.Transport{
		Proxy:                 nil, // a device talks to its server directly
		TLSHandshakeTimeout:   c.opts.dialTimeout,
		ResponseHeaderTimeout: c.opts.dialTimeout,
		DisableCompression:    true,
	}
	if u.Scheme == "wss" {
		tc, err := c.tlsConfig(cfg.SSLCA, u.Hostname())
		if err != nil {
			return dialed{}, 0, nil, err
		}
		if tc.InsecureSkipVerify {
			c.opts.logger.Warn("shellyws: TLS certificate verification is off (ssl_ca \"*\")",
				"server", redact.URL(server))
		}
		transport.TLSClientConfig = tc
	}
	dialTCP := c.opts.dialContext
	if dialTCP == nil {
		dialTCP = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	dialCtx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	// The TCP connection is made here, on Run's goroutine, and handed to
	// net/http, which would otherwise dial on a goroutine of its own that
	// can outlive Run and call the hook after it returned. Keeping it also
	// lets deadlines bound writes without a context per frame, and closing
	// it aborts everything at once.
	raw, err := dialTCP(dialCtx, "tcp", hostPort(u))
	if err != nil {
		return dialed{}, 0, nil, err
	}
	var handed sync.Once
	transport.DialContext = func(context.Context, string, string) (net.Conn, error) {
		var conn net.Conn
		handed.Do(func() { conn = raw })
		if conn == nil {
			return nil, errors.New("shellyws: one connection per dial")
		}
		return conn, nil
	}
	defer transport.CloseIdleConnections()
	target := server
	if u.User != nil {
		// A device sends no auth headers (the firmware has no field for
		// them); Go's client would turn user info into Basic auth.
		u.User = nil
		target = u.String()
	}
	heard := new(atomic.Int64)
	touch := func() { heard.Store(mono()) }
	conn, resp, err := websocket.Dial(dialCtx, target, &websocket.DialOptions{
		HTTPClient: &http.Client{
			Transport: transport,
			// Devices do not follow redirects; a 3xx is a refused handshake.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Subprotocols: []string{Subprotocol},
		// A server's ping or pong proves the connection alive, as a
		// frame does: the device then sends no ping of its own.
		OnPingReceived: func(context.Context, []byte) bool { touch(); return true },
		OnPongReceived: func(context.Context, []byte) { touch() },
	})
	if err != nil {
		raw.Close() // whether or not net/http took it, the attempt is over
		if resp != nil {
			return dialed{}, resp.StatusCode, resp.Header, err
		}
		return dialed{}, 0, nil, err
	}
	touch()
	return dialed{conn: conn, raw: raw, heard: heard}, 0, nil, nil
}

// hostPort is the address to dial for u, with the scheme's default port.
func hostPort(u *url.URL) string {
	if port := u.Port(); port != "" {
		return net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "wss" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
