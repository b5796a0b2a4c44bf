package shellywstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/redact"
)

// Conn is one device connection as the server sees it. Its methods are safe
// for concurrent use.
type Conn struct {
	s           *Server
	ws          *websocket.Conn
	subprotocol string
	remoteAddr  string
	requestURI  string
	done        chan struct{}

	mu      sync.Mutex
	src     string
	nextID  int64
	pending map[string]chan Frame // keyed by the compact JSON of the id
	queue   []Frame               // for Next; at most s.opts.queueSize
	sig     chan struct{}         // closed and replaced when queue grows
	err     error                 // why the connection ended, first cause wins
}

func newConn(s *Server, ws *websocket.Conn, r *http.Request) *Conn {
	return &Conn{
		s:           s,
		ws:          ws,
		subprotocol: ws.Subprotocol(),
		remoteAddr:  r.RemoteAddr,
		requestURI:  r.URL.RequestURI(),
		done:        make(chan struct{}),
		pending:     make(map[string]chan Frame),
		sig:         make(chan struct{}),
	}
}

// Src returns the device id: the src of the first frame from the device
// that carried one. It is empty until such a frame arrived.
func (c *Conn) Src() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src
}

// Subprotocol returns the negotiated websocket subprotocol: "json-rpc" if the
// device offered it, empty if it did not.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// RemoteAddr returns the device's "ip:port".
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// RequestURI returns the path and query of the device's handshake request,
// e.g. "/shelly?token=abc".
func (c *Conn) RequestURI() string { return c.requestURI }

// Done returns a channel closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, nil while it is up: the read error
// (websocket.CloseStatus gives a device's close code), or an error wrapping
// ErrClosedByServer or ErrQueueOverflow. A server close code is reachable
// with websocket.CloseStatus too.
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// setCause records why the connection ends unless a cause is known already.
func (c *Conn) setCause(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// goneErr is what waits return once the connection is gone.
func (c *Conn) goneErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrConnClosed, c.err)
}

// name is how the transcript calls the device.
func (c *Conn) name() string {
	if src := c.Src(); src != "" {
		return src
	}
	return c.remoteAddr
}

// readLoop is the connection's only reader; it returns when the connection
// is gone, with done closed.
func (c *Conn) readLoop() {
	ctx := context.Background()
	var err error
	for {
		var typ websocket.MessageType
		var data []byte
		typ, data, err = c.ws.Read(ctx)
		if err != nil {
			break
		}
		f := parseFrame(typ, data)
		c.logIn(f)
		if !c.route(f) {
			limit := c.s.opts.queueSize
			c.setCause(fmt.Errorf("%w: more than %d frames waiting for Next: %w", ErrQueueOverflow, limit,
				websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: "queue overflow"}))
			c.s.logf("<- server close %d queue overflow", websocket.StatusPolicyViolation)
			err = c.ws.Close(websocket.StatusPolicyViolation, "queue overflow")
			break
		}
	}
	_ = c.ws.CloseNow()
	c.setCause(err)
	c.mu.Lock()
	cause := c.err
	c.mu.Unlock()
	c.s.logf("== device %s gone: %v", c.name(), cause)
	close(c.done)
}

// route hands f to its pending call or queues it for Next. It reports false
// if the queue is full.
func (c *Conn) route(f Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == "" && f.Src != "" {
		c.src = f.Src
	}
	if f.IsResponse() {
		key := idKey(f.ID)
		if ch, ok := c.pending[key]; ok {
			delete(c.pending, key)
			ch <- f // buffered, and only one response per entry
			return true
		}
	}
	if len(c.queue) >= c.s.opts.queueSize {
		return false
	}
	c.queue = append(c.queue, f)
	close(c.sig)
	c.sig = make(chan struct{})
	return true
}

// idKey is the key of an id in pending: its compact JSON.
func idKey(id json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, id); err != nil {
		return string(id)
	}
	return b.String()
}

// Next returns the next frame the device sent that is not a response to a
// Call or CallRaw: notifications, requests, responses nobody waits for and
// anything malformed, in order of arrival. Frames that arrived before the
// connection ended are still returned; after them it returns an error
// wrapping ErrConnClosed and the cause. It waits until ctx ends.
func (c *Conn) Next(ctx context.Context) (Frame, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			f := c.queue[0]
			c.queue[0] = Frame{}
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return f, nil
		}
		sig := c.sig
		c.mu.Unlock()
		select {
		case <-c.done:
			c.mu.Lock()
			empty := len(c.queue) == 0
			c.mu.Unlock()
			if empty {
				return Frame{}, c.goneErr()
			}
		case <-sig:
		case <-ctx.Done():
			return Frame{}, fmt.Errorf("shellywstest: waiting for a frame from %s: %w", c.name(), ctx.Err())
		}
	}
}

// NextT is Next bounded by DefaultTimeout; it fails the test on error.
func (c *Conn) NextT(t testing.TB) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Call sends {"id":N,"src":<src>,"method":method,"params":params} and waits
// for the response with that id. N counts from 1 per connection; src is
// DefaultSrc unless WithSrc set it; params is encoded with encoding/json and
// left out when nil. result, a pointer or nil, receives the response's
// "result". An RPC error in the response is returned as the *shellyws.Error
// itself (errors.As works too).
//
// ctx bounds the wait for the response; when it ends Call returns its error
// and forgets the id, so a late response goes to Next. Writing the request
// is bounded by DefaultTimeout instead, because coder/websocket closes a
// connection whose write is cut short; a device that does not read for that
// long is disconnected.
func (c *Conn) Call(ctx context.Context, method string, params any, result any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	var key string
	for {
		c.nextID++
		key = strconv.FormatInt(c.nextID, 10)
		if _, busy := c.pending[key]; !busy {
			break
		}
	}
	id := c.nextID
	c.mu.Unlock()

	req := struct {
		ID     int64  `json:"id"`
		Src    string `json:"src"`
		Method string `json:"method"`
		Params any    `json:"params,omitempty"`
	}{id, c.s.opts.src, method, params}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("shellywstest: encoding %s params: %w", method, err)
	}
	if c.s.opts.logf != nil {
		if params == nil {
			c.s.logf("<- server call %s id=%d", method, id)
		} else {
			pj, _ := json.Marshal(params)
			c.s.logf("<- server call %s id=%d %s", method, id, trim(pj))
		}
	}
	f, err := c.roundTrip(ctx, key, data)
	if err != nil {
		return fmt.Errorf("shellywstest: call %s id=%d: %w", method, id, err)
	}
	if f.errPresent {
		if f.Error == nil {
			return fmt.Errorf("shellywstest: call %s id=%d: malformed error in %s", method, id, trim(f.Raw))
		}
		return f.Error
	}
	if result != nil {
		if err := json.Unmarshal(f.Result, result); err != nil {
			return fmt.Errorf("shellywstest: call %s id=%d: decoding result: %w", method, id, err)
		}
	}
	return nil
}

// CallT is Call bounded by DefaultTimeout; it fails the test on any error,
// an RPC error included.
func (c *Conn) CallT(t testing.TB, method string, params any, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		t.Fatal(err)
	}
}

// CallRaw sends frame, a request whose "id" it carries, verbatim and waits
// for the response whose id is the same JSON (compared without whitespace);
// it returns that whole response frame. It is for wire-level tests: string
// ids, id 0, odd spellings. It fails without sending if frame is not a JSON
// object with an id or if a call with that id is pending. ctx bounds the
// wait as it does for Call.
func (c *Conn) CallRaw(ctx context.Context, frame []byte) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(frame, &m); err != nil || m == nil {
		return nil, errors.New("shellywstest: CallRaw needs a JSON object")
	}
	id, ok := m["id"]
	if !ok || string(id) == "null" {
		return nil, errors.New("shellywstest: CallRaw needs a frame with an id; use Send for others")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := idKey(id)
	c.mu.Lock()
	_, busy := c.pending[key]
	c.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("shellywstest: CallRaw: a call with id %s is pending", key)
	}
	c.s.logf("<- server send %s", trim(frame))
	f, err := c.roundTrip(ctx, key, frame)
	if err != nil {
		return nil, fmt.Errorf("shellywstest: call id=%s: %w", key, err)
	}
	return f.Raw, nil
}

// roundTrip registers key, writes data and waits for the response.
func (c *Conn) roundTrip(ctx context.Context, key string, data []byte) (Frame, error) {
	ch := make(chan Frame, 1)
	c.mu.Lock()
	if _, busy := c.pending[key]; busy {
		c.mu.Unlock()
		return Frame{}, fmt.Errorf("id %s is pending", key)
	}
	c.pending[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[key] == ch {
			delete(c.pending, key)
		}
		c.mu.Unlock()
	}()

	select {
	case <-c.done:
		return Frame{}, c.goneErr()
	default:
	}
	if err := c.write(ctx, data); err != nil {
		return Frame{}, err
	}
	select {
	case f := <-ch:
		return f, nil
	case <-c.done:
		select {
		case f := <-ch:
			return f, nil
		default:
			return Frame{}, c.goneErr()
		}
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Send writes frame as one text message, verbatim and without waiting for
// a response; for malformed-input tests and requests without an id. A
// response it provokes goes to Next. It fails at once if ctx has ended; the
// write itself is bounded by DefaultTimeout as Call's is.
func (c *Conn) Send(ctx context.Context, frame []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.done:
		return c.goneErr()
	default:
	}
	c.s.logf("<- server send %s", trim(frame))
	if err := c.write(ctx, frame); err != nil {
		return fmt.Errorf("shellywstest: send: %w", err)
	}
	return nil
}

// writeTimeout bounds one write. Writes do not use the caller's context:
// coder/websocket closes the connection when a write's context ends, even
// in the instant after the frame went out, so cancelling a Call would
// otherwise kill the connection now and then.
const writeTimeout = DefaultTimeout

// write writes one text message. A write that failed because the connection
// is closed reports that as the connection being gone, once the reader has
// recorded why.
func (c *Conn) write(ctx context.Context, data []byte) error {
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := c.ws.Write(wctx, websocket.MessageText, data)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		return err
	}
	select {
	case <-c.done:
		return c.goneErr()
	case <-ctx.Done():
		return err
	}
}

// Close closes the connection with code and reason (a close handshake,
// bounded by coder/websocket's 5 s timeout) and returns once the connection
// is gone. Err then wraps ErrClosedByServer and a websocket.CloseError with
// code. Closing a connection that is already gone does nothing.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.setCause(fmt.Errorf("%w: %w", ErrClosedByServer, websocket.CloseError{Code: code, Reason: reason}))
	c.s.logf("<- server close %d %s", code, oneLine(reason))
	err := c.ws.Close(code, reason)
	<-c.done // the read loop ends now that the connection is closed
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("shellywstest: close: %w", err)
	}
	return nil
}

// drop cuts the connection without a close frame, as a crash would.
func (c *Conn) drop() {
	c.setCause(fmt.Errorf("%w: dropped without a close frame", ErrClosedByServer))
	_ = c.ws.CloseNow()
}

// logIn writes the transcript line of a frame from the device.
func (c *Conn) logIn(f Frame) {
	if c.s.opts.logf == nil {
		return
	}
	who := "device " + c.Src()
	if who == "device " {
		who = "device " + f.Src
	}
	if who == "device " {
		who = "device " + c.remoteAddr
	}
	switch {
	case f.Binary:
		c.s.logf("-> %s: binary message of %d bytes", who, len(f.Raw))
	case !f.object:
		c.s.logf("-> %s: unexpected %s", who, trim(f.Raw))
	case f.IsResponse() && f.errPresent && f.Error != nil:
		c.s.logf("-> %s: error id=%s %d %s", who, trim(f.ID), f.Error.Code, oneLine(f.Error.Message))
	case f.IsResponse() && f.errPresent:
		c.s.logf("-> %s: error id=%s %s", who, trim(f.ID), trim(f.Raw))
	case f.IsResponse():
		c.s.logf("-> %s: result id=%s%s", who, trim(f.ID), spaced(f.Result))
	case f.Method != "" && f.ID != nil:
		c.s.logf("-> %s: request %s id=%s%s", who, f.Method, trim(f.ID), spaced(f.Params))
	case f.Method != "":
		c.s.logf("-> %s: %s%s", who, f.Method, spaced(f.Params))
	default:
		c.s.logf("-> %s: unexpected %s", who, trim(f.Raw))
	}
}

// transcriptWidth is where transcript lines cut JSON.
const transcriptWidth = 200

// trim renders a message or member for the transcript and errors: JSON
// compacted onto one line, anything else quoted, cut after transcriptWidth
// bytes.
func trim(b []byte) string {
	var buf bytes.Buffer
	// Redacted before it is cut, so no secret is cut past recognition.
	if json.Compact(&buf, b) == nil {
		b = []byte(redact.Text(buf.String()))
	} else {
		quoted := strconv.Quote(redact.Text(string(b)))
		b = []byte(quoted)
	}
	if len(b) <= transcriptWidth {
		return string(b)
	}
	return string(b[:transcriptWidth]) + "..."
}

// oneLine keeps a text on one transcript line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strconv.Quote(s)
	}
	return s
}

// spaced returns " "+trim(b), or nothing for an absent member.
func spaced(b []byte) string {
	if b == nil {
		return ""
	}
	return " " + trim(b)
}
