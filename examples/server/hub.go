package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/shellyws/shellyws/internal/redact"
)

// Limits and timings of the hub; what the servers in the field use.
const (
	// readLimit is the largest frame read from a device: Home Assistant's
	// cap; a full status is a few KiB.
	readLimit = 4 << 20
	// pingInterval and pingTimeout keep connections honest like Fleet
	// Manager: a device whose pong does not come back is dropped.
	pingInterval = 30 * time.Second
	pingTimeout  = 10 * time.Second
	// writeTimeout bounds every frame the hub writes.
	writeTimeout = 10 * time.Second
	// hubSrc is the src of the hub's requests; the device answers with it
	// as dst.
	hubSrc = "shellyws_server"
)

// Errors of Hub.Call.
var (
	// ErrUnknownDevice means no device with that id ever connected.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrNotConnected means the device is known but not connected now.
	ErrNotConnected = errors.New("device not connected")
	// ErrConnectionLost means the connection dropped before the response.
	ErrConnectionLost = errors.New("connection lost before the response")
)

// Hub is the server side of the Outbound Websocket: devices connect to its
// ServeHTTP, it keeps each device's last status (the NotifyFullStatus with
// every NotifyStatus merged in, as Home Assistant does) and it calls methods
// on connected devices. Devices are identified by the src of their frames.
// Its methods are safe for concurrent use.
type Hub struct {
	logf func(format string, args ...any)

	mu       sync.Mutex
	devices  map[string]*deviceState
	sessions map[*session]struct{}
	closed   bool
	changed  chan struct{} // closed and replaced on every change, for waits

	conns sync.WaitGroup // ServeHTTP calls that upgraded
}

// deviceState is what the hub knows about one device; guarded by Hub.mu.
type deviceState struct {
	id        string
	sess      *session // nil while disconnected
	remote    string
	since     time.Time // connected or disconnected since
	status    map[string]any
	lastTS    float64
	fullCount int // NotifyFullStatus received, over all connections
}

// DeviceSummary is one entry of GET /devices.
type DeviceSummary struct {
	ID        string    `json:"id"`
	Connected bool      `json:"connected"`
	Remote    string    `json:"remote"`
	Since     time.Time `json:"since"`
}

// NewHub returns a hub logging to logf, one line per call without a trailing
// newline; nil logs nothing.
func NewHub(logf func(format string, args ...any)) *Hub {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Hub{
		logf:     logf,
		devices:  make(map[string]*deviceState),
		sessions: make(map[*session]struct{}),
		changed:  make(chan struct{}),
	}
}

// changedLocked wakes every wait; the caller holds h.mu.
func (h *Hub) changedLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// wait blocks until cond, called under the hub's lock, holds or ctx ends.
// Tests use it instead of sleeping.
func (h *Hub) wait(ctx context.Context, cond func() bool) error {
	for {
		h.mu.Lock()
		ok, ch := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// session is one device connection.
type session struct {
	hub    *Hub
	ws     *websocket.Conn
	remote string
	done   chan struct{} // closed when the connection is gone

	mu      sync.Mutex
	src     string
	nextID  int64
	pending map[int64]chan json.RawMessage
}

// ServeHTTP accepts a device's websocket on any path and serves it until it
// closes. The path and query are logged, not checked: this is an example.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	defer h.conns.Done()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
	if err != nil {
		h.logf("handshake from %s failed: %v", r.RemoteAddr, err)
		return
	}
	ws.SetReadLimit(readLimit)
	s := &session{hub: h, ws: ws, remote: r.RemoteAddr, done: make(chan struct{}), pending: map[int64]chan json.RawMessage{}}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
	h.logf("connection from %s to %s (subprotocol %q)", r.RemoteAddr, r.URL.Path, ws.Subprotocol())

	// Not the request's context: a cancelled read context tears the
	// connection down without a close frame.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.keepalive(ctx) })
	err = s.readLoop(ctx)
	cancel()
	wg.Wait()
	ws.CloseNow()
	close(s.done)
	h.detach(s, err)
}

// readLoop reads frames until the connection fails.
func (s *session) readLoop(ctx context.Context) error {
	for {
		typ, data, err := s.ws.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			s.hub.logf("%s: dropped a binary message", s.name())
			continue
		}
		s.handle(data)
	}
}

// keepalive pings the device until ctx ends, and drops it when a pong does
// not come back in time.
func (s *session) keepalive(ctx context.Context) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := s.ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.hub.logf("%s: no pong within %v, dropping it", s.name(), pingTimeout)
				s.ws.CloseNow()
				return
			}
		}
	}
}

func (s *session) name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != "" {
		return s.src
	}
	return s.remote
}

// frame is a device frame, decoded leniently.
type frame struct {
	ID     json.RawMessage `json:"id"`
	Src    string          `json:"src"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// handle routes one frame: notifications update the device's status,
// responses go to their Call.
func (s *session) handle(data []byte) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		s.hub.logf("%s: dropped a malformed frame: %s", s.name(), trim(data))
		return
	}
	if f.Src != "" {
		s.hub.attach(s, f.Src)
	}
	switch {
	case f.Method != "" && f.ID == nil:
		s.hub.notification(s.name(), f.Method, f.Params)
	case f.Method == "" && f.ID != nil:
		id, err := strconv.ParseInt(string(f.ID), 10, 64)
		s.mu.Lock()
		ch, ok := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if err != nil || !ok {
			s.hub.logf("%s: response nobody waits for: %s", s.name(), trim(data))
			return
		}
		ch <- json.RawMessage(data) // buffered, one response per id
	default:
		s.hub.logf("%s: unexpected frame: %s", s.name(), trim(data))
	}
}

// attach binds s to the device src on its first frame with a src. A device
// that reconnects while its old connection still looks alive (a half-open
// TCP connection) replaces it.
func (h *Hub) attach(s *session, src string) {
	s.mu.Lock()
	known := s.src
	if known == "" {
		s.src = src
	}
	s.mu.Unlock()
	if known != "" {
		if known != src {
			h.logf("%s: ignoring a frame with src %s", known, src)
		}
		return
	}
	h.mu.Lock()
	d := h.devices[src]
	if d == nil {
		d = &deviceState{id: src}
		h.devices[src] = d
	}
	old := d.sess
	d.sess, d.remote, d.since = s, s.remote, time.Now()
	h.changedLocked()
	h.mu.Unlock()
	h.logf("%s: connected from %s", src, s.remote)
	if old != nil {
		h.logf("%s: dropping its previous connection", src)
		old.ws.CloseNow()
	}
}

// detach marks the device of s disconnected, unless a newer connection took
// over, and fails the calls waiting on s.
func (h *Hub) detach(s *session, cause error) {
	src := s.name()
	h.mu.Lock()
	delete(h.sessions, s)
	if d := h.devices[src]; d != nil && d.sess == s {
		d.sess, d.since = nil, time.Now()
		h.changedLocked()
	}
	h.mu.Unlock()
	reason := "closed"
	if code := websocket.CloseStatus(cause); code != -1 {
		reason = fmt.Sprintf("closed with %d", int(code))
	} else if cause != nil {
		reason = cause.Error()
	}
	h.logf("%s: disconnected (%s)", src, reason)
}

// notification applies a notification to the device's status and logs it.
func (h *Hub) notification(src, method string, params json.RawMessage) {
	var p map[string]any
	if err := decodeJSON(params, &p); err != nil || p == nil {
		h.logf("%s: %s without object params, dropped", src, method)
		return
	}
	ts, _ := p["ts"].(json.Number)
	delete(p, "ts")
	h.mu.Lock()
	d := h.devices[src]
	if d == nil {
		// A notification before any src is impossible: src names the
		// device. Keep it anyway under that name.
		d = &deviceState{id: src}
		h.devices[src] = d
	}
	if f, err := ts.Float64(); err == nil {
		d.lastTS = f
	}
	switch method {
	case "NotifyFullStatus":
		d.status = p
		d.fullCount++
	case "NotifyStatus":
		if d.status == nil {
			d.status = map[string]any{}
		}
		mergeStatus(d.status, p)
	}
	h.changedLocked()
	h.mu.Unlock()

	switch method {
	case "NotifyFullStatus":
		h.logf("%s: NotifyFullStatus with %d components", src, len(p))
	case "NotifyEvent":
		events, _ := p["events"].([]any)
		for _, e := range events {
			ev, _ := e.(map[string]any)
			raw, _ := json.Marshal(ev)
			h.logf("%s: NotifyEvent %v %v %s", src, ev["component"], ev["event"], trim(raw))
		}
	default:
		raw, _ := json.Marshal(p)
		h.logf("%s: %s %s", src, method, trim(raw))
	}
}

// mergeStatus overlays a NotifyStatus delta on a status, as Home Assistant's
// library does: objects merge key by key, recursively (a delta carries only
// what changed), anything else replaces. Unlike it, a null component removes
// the component: the protocol sends "key": null for a component that is gone.
func mergeStatus(status, delta map[string]any) {
	for key, v := range delta {
		if v == nil {
			delete(status, key)
			continue
		}
		mergeValue(status, key, v)
	}
}

func mergeValue(dst map[string]any, key string, v any) {
	src, ok := v.(map[string]any)
	if !ok {
		dst[key] = v
		return
	}
	target, ok := dst[key].(map[string]any)
	if !ok {
		target = make(map[string]any, len(src))
		dst[key] = target
	}
	for k, sv := range src {
		mergeValue(target, k, sv)
	}
}

// decodeJSON decodes with numbers kept as written, so a status round-trips
// without float noise.
func decodeJSON(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// Devices lists the devices the hub has seen, sorted by id.
func (h *Hub) Devices() []DeviceSummary {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := make([]DeviceSummary, 0, len(h.devices))
	for _, d := range h.devices {
		list = append(list, DeviceSummary{ID: d.id, Connected: d.sess != nil, Remote: d.remote, Since: d.since})
	}
	slices.SortFunc(list, func(a, b DeviceSummary) int { return strings.Compare(a.ID, b.ID) })
	return list
}

// Status returns the device's merged status, encoded, and whether the device
// is known.
func (h *Hub) Status(id string) (json.RawMessage, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[id]
	if d == nil {
		return nil, false
	}
	if d.status == nil {
		return json.RawMessage(`{}`), true
	}
	raw, err := json.Marshal(d.status)
	if err != nil {
		return nil, false
	}
	return raw, true
}

// Call sends method with params (a JSON object, or nil) to the device and
// returns its whole response frame, result or error. ctx bounds the wait.
func (h *Hub) Call(ctx context.Context, id, method string, params json.RawMessage) (json.RawMessage, error) {
	h.mu.Lock()
	d := h.devices[id]
	var s *session
	if d != nil {
		s = d.sess
	}
	h.mu.Unlock()
	switch {
	case d == nil:
		return nil, ErrUnknownDevice
	case s == nil:
		return nil, ErrNotConnected
	}
	return s.call(ctx, method, params)
}

func (s *session) call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	ch := make(chan json.RawMessage, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	req, err := json.Marshal(struct {
		ID     int64           `json:"id"`
		Src    string          `json:"src"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params,omitempty"`
	}{id, hubSrc, method, params})
	if err != nil {
		return nil, err
	}
	// The write is bounded on its own: coder/websocket closes a connection
	// whose write is cut short, and a caller giving up must not do that.
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err = s.ws.Write(wctx, websocket.MessageText, req)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("sending %s: %w", method, err)
	}
	s.hub.logf("%s: -> %s id=%d %s", s.name(), method, id, trim(params))
	select {
	case resp := <-ch:
		return resp, nil
	case <-s.done:
		return nil, ErrConnectionLost
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes every device connection with 1001 (going away), refuses new
// ones, and returns when all of them are gone.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() { s.ws.Close(websocket.StatusGoingAway, "server shutting down") })
	}
	wg.Wait()
	h.conns.Wait()
}

// trim shows a frame's JSON on one line, its secrets (ha1, passwords, URL
// query values) redacted before it is cut to a readable length, so no part
// of one is left.
func trim(raw []byte) string {
	const width = 160
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		raw = b.Bytes()
	}
	s := redact.Text(string(raw))
	if len(s) > width {
		return s[:width] + "…"
	}
	return s
}
