package shellywstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
)

// DeviceOption configures a DeviceClient.
type DeviceOption func(*deviceOptions)

type deviceOptions struct {
	password string
	src      string
	logf     func(format string, args ...any)
}

// WithPassword sets the password DeviceClient.Call answers the device's
// digest challenges with (user admin, protocol section 10). Default: none;
// a device with authentication on then answers 401.
func WithPassword(password string) DeviceOption {
	return func(o *deviceOptions) { o.password = password }
}

// WithClientSrc sets the src of the client's requests, which the device
// also uses as the dst of the notifications it sends the client. Default
// DefaultSrc ("shellywstest").
func WithClientSrc(src string) DeviceOption {
	return func(o *deviceOptions) { o.src = src }
}

// WithClientLogf sets a transcript hook as WithLogf does for a Server.
// The client's calls show as "<- client call <method> id=N" lines, without
// their params, which may carry secrets (Shelly.SetAuth's ha1); the
// device's frames as "->" lines. Default: no transcript.
func WithClientLogf(f func(format string, args ...any)) DeviceOption {
	return func(o *deviceOptions) { o.logf = f }
}

// DeviceClient is a client of a device's own websocket channel,
// ws://<addr>/rpc, as served by shellyws.Handler and opened by Home
// Assistant's aioshelly. Call sends a request and, when the device asks
// for a password, answers its digest challenge with the "auth" object of
// protocol section 10 (FrameAuth). It keeps each nonce it was given and
// uses it again with the next nc, one call at a time per nonce, so later
// calls need no extra round trip and concurrent calls never send a nonce's
// nc out of order.
//
// The embedded Conn reads what else the device sends: Next, NextMethod
// and the Expect helpers return the notifications (NotifyStatus,
// NotifyEvent) a device sends a client once it has answered a request of
// it with a src (an authenticated one, with authentication on), so make a
// call first. Conn.Call, CallRaw and Send send frames without auth; Close
// closes the connection (its Err then wraps ErrClosedByServer: this side
// closed it). Its methods are safe for concurrent use.
type DeviceClient struct {
	*Conn
	password string

	nonceMu sync.Mutex
	idle    []*nonceUse // nonces no call is using, newest last
}

// nonceUse is a nonce the device issued and the last nc sent with it.
type nonceUse struct {
	ch Challenge
	nc uint64
}

// maxIdleNonces bounds the nonces a client keeps: a device holds at most
// 32 (protocol section 10) and forgets older ones.
const maxIdleNonces = 32

// DialDevice opens a DeviceClient to url, the device's ws://HOST:PORT/rpc,
// and closes it when the test ends. It fails the test if the handshake
// fails within DefaultTimeout.
func DialDevice(t testing.TB, url string, opts ...DeviceOption) *DeviceClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	c, err := DialDeviceContext(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
	return c
}

// DialDeviceContext is DialDevice for programs without a testing.TB: ctx
// bounds the handshake, and the caller closes the client with Close.
func DialDeviceContext(ctx context.Context, rawURL string, opts ...DeviceOption) (*DeviceClient, error) {
	o := deviceOptions{src: DefaultSrc}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("shellywstest: device URL: not a URL; want ws://HOST:PORT/rpc")
	}
	// Errors and the transcript show the URL without userinfo and query
	// values, which may hold secrets.
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.RawQuery != "" {
		shown.RawQuery = "…"
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("shellywstest: device URL %s: want ws://HOST:PORT/rpc", shown)
	}
	ws, _, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		// The HTTP client's error quotes the whole URL: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("shellywstest: dialing the device at %s: %w", shown, err)
	}
	ws.SetReadLimit(ReadLimit)
	// The Conn takes its src, queue size and transcript from a server's
	// options; this one never listens.
	holder := NewUnstartedServer(WithSrc(o.src), WithLogf(o.logf))
	c := newConn(holder, ws, &http.Request{RemoteAddr: u.Host, URL: shown})
	holder.logf("== connected to device %s subprotocol=%s", shown, c.subprotocol)
	go c.readLoop()
	return &DeviceClient{Conn: c, password: o.password}, nil
}

// Call sends {"id":N,"src":<src>,"method":method,"params":params} and waits
// for its response, as Conn.Call does (result, a pointer or nil, receives
// the result; an RPC error is returned as the *shellyws.Error). With a
// password (WithPassword) a request carries the auth of a kept nonce;
// when the device answers 401 (no nonce kept yet, or one it no longer
// knows), Call answers the challenge and sends the request once more.
// Without a password the 401 is returned; its Message is the challenge
// (ParseChallenge).
func (c *DeviceClient) Call(ctx context.Context, method string, params any, result any) error {
	n := c.takeNonce()
	f, err := c.exchange(ctx, method, params, n)
	if err == nil && c.password != "" && unauthorized(f) {
		ch, perr := ParseChallenge(f.Error.Message)
		if perr != nil {
			return fmt.Errorf("shellywstest: call %s: %w", method, perr)
		}
		n = &nonceUse{ch: ch}
		f, err = c.exchange(ctx, method, params, n)
	}
	if err != nil {
		return err
	}
	if n != nil && !unauthorized(f) {
		c.putNonce(n)
	}
	if f.errPresent {
		if f.Error == nil {
			return fmt.Errorf("shellywstest: call %s: malformed error in %s", method, trim(f.Raw))
		}
		return f.Error
	}
	if result != nil {
		if err := json.Unmarshal(f.Result, result); err != nil {
			return fmt.Errorf("shellywstest: call %s: decoding result: %w", method, err)
		}
	}
	return nil
}

func unauthorized(f Frame) bool {
	return f.Error != nil && f.Error.Code == shellyws.CodeUnauthorized
}

// takeNonce returns a kept nonce no other call uses, or nil.
func (c *DeviceClient) takeNonce() *nonceUse {
	if c.password == "" {
		return nil
	}
	c.nonceMu.Lock()
	defer c.nonceMu.Unlock()
	if len(c.idle) == 0 {
		return nil
	}
	n := c.idle[len(c.idle)-1]
	c.idle = c.idle[:len(c.idle)-1]
	return n
}

// putNonce keeps n for later calls, forgetting the oldest beyond
// maxIdleNonces.
func (c *DeviceClient) putNonce(n *nonceUse) {
	c.nonceMu.Lock()
	defer c.nonceMu.Unlock()
	c.idle = append(c.idle, n)
	if len(c.idle) > maxIdleNonces {
		c.idle = append(c.idle[:0], c.idle[1:]...)
	}
}

// CallT is Call bounded by DefaultTimeout; it fails the test on any error,
// an RPC error included.
func (c *DeviceClient) CallT(t testing.TB, method string, params any, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		t.Fatal(err)
	}
}

// exchange sends one request, with the auth of n's next nc when n is not
// nil, and returns the response frame.
func (c *DeviceClient) exchange(ctx context.Context, method string, params any, n *nonceUse) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	req := struct {
		ID     int64          `json:"id"`
		Src    string         `json:"src"`
		Method string         `json:"method"`
		Params any            `json:"params,omitempty"`
		Auth   map[string]any `json:"auth,omitempty"`
	}{Src: c.s.opts.src, Method: method, Params: params}
	if n != nil {
		n.nc++
		req.Auth = FrameAuth(n.ch, c.password, n.nc)
	}
	c.Conn.mu.Lock()
	var key string
	for {
		c.nextID++
		key = strconv.FormatInt(c.nextID, 10)
		if _, busy := c.pending[key]; !busy {
			break
		}
	}
	req.ID = c.nextID
	c.Conn.mu.Unlock()
	data, err := json.Marshal(req)
	if err != nil {
		return Frame{}, fmt.Errorf("shellywstest: encoding %s params: %w", method, err)
	}
	c.s.logf("<- client call %s id=%d", method, req.ID)
	f, err := c.roundTrip(ctx, key, data)
	if err != nil {
		return Frame{}, fmt.Errorf("shellywstest: call %s id=%d: %w", method, req.ID, err)
	}
	return f, nil
}
