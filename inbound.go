package shellyws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/internal/digest"
	"github.com/shellyws/shellyws/internal/frame"
)

// Limits of the inbound channels, stated in the docs of the options that
// set them.
const (
	defaultMaxRequestSize  = 64 << 10
	defaultMaxClients      = 8
	defaultClientQueueSize = 25
	defaultAuthTimeout     = 10 * time.Second
)

// HandlerOption configures a Handler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	maxRequestSize  int64
	maxClients      int
	clientQueueSize int
	originPatterns  []string
	authTimeout     time.Duration
}

// WithMaxRequestSize bounds what one request may carry: an HTTP body, a
// query string, a websocket message. A larger body is answered 413, a larger
// query string 414, and a larger websocket message closes that client's
// connection with status 1009. A value below 1 means the default.
// Default: 64 KiB.
func WithMaxRequestSize(n int64) HandlerOption {
	return func(o *handlerOptions) { o.maxRequestSize = n }
}

// WithMaxClients bounds how many inbound websocket clients may be connected
// at once; a handshake beyond it is answered 503, as a device with its
// websocket channel busy does; 0 (or a negative value) turns the websocket
// channel off. Default: 8.
func WithMaxClients(n int) HandlerOption {
	return func(o *handlerOptions) { o.maxClients = n }
}

// WithAuthTimeout sets how long a websocket client may stay connected,
// once authentication is on, without sending a request that
// authenticates: after d from its handshake it is closed with 1008
// (policy violation), so that clients which never authenticate cannot
// hold every WithMaxClients slot and keep the owner out. Exempt requests
// (Shelly.GetDeviceInfo) do not count. A value below 1 means the default.
// Default: 10 s.
func WithAuthTimeout(d time.Duration) HandlerOption {
	return func(o *handlerOptions) { o.authTimeout = d }
}

// WithClientQueueSize bounds the notifications waiting for one slow
// websocket client; when it is full the oldest is dropped, so a client that
// falls behind never blocks NotifyStatus, NotifyEvent or other clients; 0
// (or a negative value) sends websocket clients no notifications at all.
// Default: 25, the firmware's queue length.
func WithClientQueueSize(n int) HandlerOption {
	return func(o *handlerOptions) { o.clientQueueSize = n }
}

// WithOriginPatterns restricts which browser origins may open the inbound
// websocket, with the patterns of websocket.AcceptOptions.OriginPatterns
// (the request's own host is always allowed). Default: any origin, as a
// device accepts any; set this when the handler is reachable from web pages
// that must not drive the device.
func WithOriginPatterns(patterns ...string) HandlerOption {
	return func(o *handlerOptions) { o.originPatterns = append([]string(nil), patterns...) }
}

// Handler serves a component's Dispatcher on the inbound channels a real
// Gen2 device offers on its web server:
//
//   - GET /rpc/<method>?<name>=<value>&... calls method with the query as
//     params. Each value that is valid JSON is taken as that JSON, any other
//     as a string, so ?id=0&on=true and ?config={"ssl_ca":"*"} both work
//     (URL-encoded or not) and ?name="true" passes the string "true".
//   - POST /rpc/<method> calls method with the body, a JSON object, as
//     params; an empty body means no params and the query is used instead.
//   - Both answer 200 with the bare result (application/json, null for a
//     method with nothing to return). An RPC error is answered like the
//     firmware does: HTTP 404 for code 404 (no handler), HTTP 500 for every
//     other code, with {"code":<code>,"message":"<text>"} as body.
//   - POST /rpc takes one whole request frame as body and answers 200 with
//     the whole response frame, error responses included, byte for byte as
//     the outbound channel would send it (keys id, src, dst, result|error;
//     dst only when the request had a src). A frame without an id is
//     executed and answered 200 with an empty body.
//   - GET /rpc with a websocket handshake opens the inbound websocket
//     channel (subprotocol json-rpc if the client offers it, not required):
//     request and response frames as on the outbound channel. Once a client
//     sent a request with a src (an authenticated one, once authentication
//     is on), every notification the component publishes from then on
//     (NotifyStatus, NotifyEvent) is sent to it too, with that src as dst;
//     the first such src is kept, as the firmware does.
//   - GET /shelly answers the result of Shelly.GetDeviceInfo, the device
//     information that needs no authentication, or its error like GET
//     /rpc/<method> does.
//
// Requests that cannot be parsed are answered 400 (code -103), a body over
// the size limit 413 and a query string over it 414 (code -108), unknown
// paths 404 (code 404), other HTTP methods 405 (code 405, with Allow), a
// websocket handshake beyond WithMaxClients 503 (code -108), anything
// after Close 503 (code -114, "Shutting down") and anything while the
// component reboots 503 (code -114, "Rebooting"); always with a JSON body
// {"code":..,"message":..}. A handler's panic is answered as a 500 error
// (code 500) and logged.
//
// The REST forms (/rpc/<method>, /shelly) dispatch requests without ID and
// Src; POST /rpc passes the frame's. Request.Channel is ChannelHTTP for all
// of them and ChannelInboundWebsocket on the websocket. Every request is dispatched with a
// context that ends when the client goes away, Close is called, the
// component reboots or its wake ends. HTTP
// requests share the component's in-flight limit (WithMaxInFlight): beyond
// it they wait for a slot. Each websocket client is served like the
// outbound connection: one goroutine while idle (see Dispatcher), a read limit
// (WithMaxRequestSize), the component's in-flight limit, write timeout and
// ping keepalive (WithMaxInFlight, WithWriteTimeout, WithPing), and a
// bounded notification queue (WithClientQueueSize). A malformed frame is
// dropped and logged; the client stays connected.
//
// Paths are matched exactly; mount the handler under a prefix with
// http.StripPrefix. Any browser origin may open the websocket unless
// WithOriginPatterns says otherwise.
//
// Once the component's authentication is on (Component.SetAuth,
// Shelly.SetAuth, WithAuthStore), every request but Shelly.GetDeviceInfo
// and GET /shelly must authenticate, as on a device: the REST forms with
// HTTP digest (RFC 7616, SHA-256, qop auth; a 401 carries the
// WWW-Authenticate challenge, so curl --digest -u admin:PASS works), RPC
// frames with their "auth" object (a 401 error whose message is the JSON
// challenge), POST /rpc with either. Nonces follow the firmware: valid
// an hour, reusable with any nc not used before within 128 of the highest,
// at most 32 live, and 2 s of 429 answers once failed attempts (every
// wrong credential) fill the table; a reboot or a wake forgets them. The websocket handshake itself is not challenged, but a
// client that has not authenticated within WithAuthTimeout of it is closed
// with 1008, so that clients which never do cannot hold every slot.
//
// Component.Reboot drops every websocket client of the handler without a
// close frame and cancels the context of requests in flight.
//
// For a sleeping device (see Component.Wake) the handler follows the
// wake cycle: when a wake ends, websocket clients are closed with status
// 1000 and HTTP requests still running see their context end; while the
// device is asleep every request is answered 503 (code -114) "Asleep".
//
// Websocket connections are hijacked, so http.Server.Shutdown neither
// closes nor waits for them: call Close, which closes every inbound
// websocket client with status 1001 and returns when all their goroutines
// (handlers included) have ended. HTTP requests still running when Close is
// called see their context end; later requests are answered 503.
type Handler struct {
	c    *Component
	opts handlerOptions
	log  *slog.Logger

	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	httpSlots chan struct{} // in-flight HTTP requests

	auth *digest.Gate // nonce table of the device's own channels (inbound_auth.go)

	mu       sync.Mutex
	closed   bool
	clients  int
	authBoot authEpoch      // the boot the nonce table belongs to
	wg       sync.WaitGroup // websocket clients
}

// NewHandler returns the inbound channels of c, serving c's Dispatcher.
// The returned Handler must be closed with Close.
func NewHandler(c *Component, opts ...HandlerOption) *Handler {
	o := handlerOptions{
		maxRequestSize:  defaultMaxRequestSize,
		maxClients:      defaultMaxClients,
		clientQueueSize: defaultClientQueueSize,
		authTimeout:     defaultAuthTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.authTimeout < 1 {
		o.authTimeout = defaultAuthTimeout
	}
	if o.maxRequestSize < 1 {
		o.maxRequestSize = defaultMaxRequestSize
	}
	if o.maxClients < 0 {
		o.maxClients = 0
	}
	if o.clientQueueSize < 0 {
		o.clientQueueSize = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{
		c:         c,
		opts:      o,
		log:       c.opts.logger,
		ctx:       ctx,
		cancel:    cancel,
		httpSlots: make(chan struct{}, c.opts.maxInFlight),
		auth:      digest.NewGate(c.opts.clock),
	}
}

// Close closes every inbound websocket client with status 1001 and waits for
// their goroutines and handlers to end; a client that does not answer the
// close frame is cut off after a second, or after coder/websocket's 5 s if
// it had every in-flight slot taken at that moment. Later requests are
// answered 503. Close is idempotent and safe for concurrent use.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.ctx.Err() != nil {
		writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Shutting down")
		return
	}
	if _, down := h.c.powerState(); down {
		writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Rebooting")
		return
	}
	if h.c.asleep() {
		writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Asleep")
		return
	}
	switch p := r.URL.Path; {
	case p == "/rpc":
		switch {
		case r.Method == http.MethodPost:
			h.serveFrame(w, r)
		case r.Method == http.MethodGet && isWebsocketUpgrade(r):
			h.serveWebsocket(w, r)
		case r.Method == http.MethodGet:
			writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument,
				"Missing method: use GET /rpc/<method>, POST /rpc or a websocket")
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(p, "/rpc/"):
		method := p[len("/rpc/"):]
		if method == "" {
			writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Missing method after /rpc/")
			return
		}
		switch r.Method {
		case http.MethodGet:
			h.serveGet(w, r, method)
		case http.MethodPost:
			h.servePost(w, r, method)
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case p == "/shelly":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.serveREST(w, r, newCall(r.Context(), ChannelHTTP, nil, "", deviceInfoMethod, nil))
	default:
		writeJSONError(w, http.StatusNotFound, CodeNoHandler, "Not found: "+p)
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSONError(w, http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "Method not allowed")
}

// writeJSONError answers status with {"code":code,"message":msg}.
func writeJSONError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, appendErrorObject(nil, code, msg))
}

func appendErrorObject(buf []byte, code int, msg string) []byte {
	buf = append(buf, `{"code":`...)
	buf = strconv.AppendInt(buf, int64(code), 10)
	buf = append(buf, `,"message":`...)
	buf = frame.AppendString(buf, msg)
	return append(buf, '}')
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// httpStatusOf maps an RPC error code to the HTTP status of the REST forms,
// as the firmware's HTTP channel does: 404 stays 404, anything else is 500.
func httpStatusOf(code int) int {
	if code == CodeNoHandler {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// serveGet calls method with the query string as params.
func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request, method string) {
	params, status, err := h.queryParams(r.URL.RawQuery)
	if err != nil {
		writeJSONError(w, status, err.Code, err.Message)
		return
	}
	h.serveREST(w, r, newCall(r.Context(), ChannelHTTP, nil, "", method, params))
}

// servePost calls method with the body (or, when it is empty, the query
// string) as params.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request, method string) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var params json.RawMessage
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
		if (trimmed[0] != '{' && string(trimmed) != "null") || !json.Valid(trimmed) {
			writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Body must be a JSON object of params")
			return
		}
		if trimmed[0] == '{' {
			params = trimmed
		}
	} else {
		var status int
		var perr *Error
		params, status, perr = h.queryParams(r.URL.RawQuery)
		if perr != nil {
			writeJSONError(w, status, perr.Code, perr.Message)
			return
		}
	}
	h.serveREST(w, r, newCall(r.Context(), ChannelHTTP, nil, "", method, params))
}

// serveREST dispatches cl and answers the bare result or the error object.
func (h *Handler) serveREST(w http.ResponseWriter, r *http.Request, cl *call) {
	defer h.replied(w, cl)
	if !h.authorizeHTTP(w, r, cl.req.Method) {
		return
	}
	result, ok, err := h.dispatchHTTP(w, r, cl)
	if !ok {
		return
	}
	var raw []byte
	if err == nil {
		raw, err = encodeResult(result)
	}
	if err != nil {
		e := AsError(err)
		writeJSONError(w, httpStatusOf(e.Code), e.Code, e.Message)
		return
	}
	writeJSON(w, http.StatusOK, raw)
}

// serveFrame answers POST /rpc: one request frame in, one response frame out.
func (h *Handler) serveFrame(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if !h.authorizePostFrame(w, r, body) {
		return
	}
	cl, err := decodeCall(r.Context(), ChannelHTTP, body)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Invalid request frame: "+err.Error())
		return
	}
	defer h.replied(w, cl)
	result, ok, derr := h.dispatchHTTP(w, r, cl)
	if !ok {
		return
	}
	if cl.req.ID == nil {
		// Executed, never answered: only the HTTP exchange is completed.
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, h.c.appendResponse(nil, &cl.req, result, derr))
}

// replied starts what the handler of cl gave AfterReply, once the answer
// written to w is on the wire.
func (h *Handler) replied(w http.ResponseWriter, cl *call) {
	cl.done(func(after func()) {
		_ = http.NewResponseController(w).Flush()
		h.spawn(after)
	})
}

// spawn runs f on a goroutine Close waits for; once Close has begun, on
// the caller's.
func (h *Handler) spawn(f func()) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		f()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// readBody reads the whole body within the size limit, answering 413 when
// it is larger; ok is false when an answer was written.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	limit := h.opts.maxRequestSize
	if r.ContentLength > limit {
		tooLarge(w, limit)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge(w, limit)
		} else {
			writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Failed to read the body")
		}
		return nil, false
	}
	return body, true
}

func tooLarge(w http.ResponseWriter, limit int64) {
	writeJSONError(w, http.StatusRequestEntityTooLarge, CodeResourceExhausted,
		fmt.Sprintf("Request body larger than %d bytes", limit))
}

// queryParams turns a raw query string into a params object. Names are
// kept in order; a name given twice, an empty name or a bad escape is an
// error, answered with status.
func (h *Handler) queryParams(raw string) (json.RawMessage, int, *Error) {
	if int64(len(raw)) > h.opts.maxRequestSize {
		return nil, http.StatusRequestURITooLong,
			Errorf(CodeResourceExhausted, "Query string longer than %d bytes", h.opts.maxRequestSize)
	}
	if raw == "" {
		return nil, 0, nil
	}
	buf := make([]byte, 0, len(raw)+16)
	buf = append(buf, '{')
	seen := make(map[string]bool)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, http.StatusBadRequest, Errorf(CodeInvalidArgument, "Bad escape in query name %q", rawName)
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, http.StatusBadRequest, Errorf(CodeInvalidArgument, "Bad escape in the value of '%s'", name)
		}
		if name == "" {
			return nil, http.StatusBadRequest, Errorf(CodeInvalidArgument, "Query argument without a name")
		}
		if seen[name] {
			return nil, http.StatusBadRequest, Errorf(CodeInvalidArgument, "Argument '%s' given twice", name)
		}
		seen[name] = true
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = frame.AppendString(buf, name)
		buf = append(buf, ':')
		if v := strings.TrimSpace(value); v != "" && json.Valid([]byte(v)) {
			buf = append(buf, v...)
		} else {
			buf = frame.AppendString(buf, value)
		}
	}
	if len(buf) == 1 {
		return nil, 0, nil
	}
	return append(buf, '}'), 0, nil
}

// dispatchHTTP runs cl within the HTTP in-flight limit, with a context that
// ends when the client goes, the handler closes, the device reboots or its
// wake ends. ok is false when the request was abandoned (an answer, if any
// could be given, was written).
func (h *Handler) dispatchHTTP(w http.ResponseWriter, r *http.Request, cl *call) (result any, ok bool, err error) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	power, _ := h.c.powerState()
	stopPower := context.AfterFunc(power, cancel)
	defer stopPower()
	if wake := h.c.wakeDone(); wake != nil {
		stopWake := context.AfterFunc(wake, cancel)
		defer stopWake()
	}
	cl.Context = ctx
	select {
	case h.httpSlots <- struct{}{}:
	case <-ctx.Done():
		switch {
		case h.ctx.Err() != nil:
			writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Shutting down")
		case power.Err() != nil:
			writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Rebooting")
		case h.c.asleep():
			writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Asleep")
		}
		return nil, false, nil
	}
	defer func() { <-h.httpSlots }()
	result, err = h.c.dispatch(cl)
	return result, true, err
}

func isWebsocketUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}

// serveWebsocket runs one inbound websocket client until it goes, the
// handler closes or the device reboots, serving it as a peer on this
// goroutine.
func (h *Handler) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	power, down := h.c.powerState()
	h.mu.Lock()
	switch {
	case down:
		h.mu.Unlock()
		writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Rebooting")
		return
	case h.closed:
		h.mu.Unlock()
		writeJSONError(w, http.StatusServiceUnavailable, CodeUnavailable, "Shutting down")
		return
	case h.clients >= h.opts.maxClients:
		h.mu.Unlock()
		writeJSONError(w, http.StatusServiceUnavailable, CodeResourceExhausted, "Too many websocket clients")
		return
	}
	h.clients++
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.clients--
		h.mu.Unlock()
		h.wg.Done()
	}()

	cc := newCoderConn(&h.c.opts)
	ws, err := websocket.Accept(w, r, cc.acceptOptions(&websocket.AcceptOptions{
		Subprotocols:       []string{Subprotocol},
		InsecureSkipVerify: len(h.opts.originPatterns) == 0,
		OriginPatterns:     h.opts.originPatterns,
	}))
	if err != nil {
		h.log.Debug("shellyws: inbound websocket handshake failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(h.opts.maxRequestSize)
	cc.ws = ws
	log := h.log.With("remote", r.RemoteAddr)
	p := newPeer(h.ctx, h.c, cc, log, newNotifyQueue(h.opts.clientQueueSize), false)
	p.dstFromSrc = true
	p.channel = ChannelInboundWebsocket
	p.authorize = h.authorizeFrame
	deadline := h.authDeadline(&p.authed)
	defer deadline.stop()
	unsubscribe := h.c.subscribe(p.notify)
	defer unsubscribe()
	log.Debug("shellyws: inbound websocket client connected")
	end := p.run(stopOn{h.ctx, endShutdown}, stopOn{power, endReboot}, stopOn{h.c.wakeDone(), endSleep},
		stopOn{deadline.ctx, endPolicy})
	switch {
	case end.reason == endPolicy:
		log.Debug("shellyws: inbound websocket client closed: not authenticated in time", "timeout", h.opts.authTimeout)
	case end.err != nil:
		log.Debug("shellyws: inbound websocket client gone", "op", end.op, "err", end.err)
	}
}

// authDeadline is the auth timeout of one websocket client: its ctx ends
// when the timeout passed with authentication on and authed still false.
type authDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	wg     sync.WaitGroup // the timer's function, once armed
}

// authDeadline arms the auth timeout of a client that just connected.
func (h *Handler) authDeadline(authed *atomic.Bool) *authDeadline {
	d := &authDeadline{}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	d.timer = time.AfterFunc(h.opts.authTimeout, func() {
		defer d.wg.Done()
		if !authed.Load() && h.c.auth.get().Enable {
			d.cancel()
		}
	})
	return d
}

// stop disarms the timeout and waits for its function, should it run.
func (d *authDeadline) stop() {
	if d.timer.Stop() {
		d.wg.Done()
	}
	d.wg.Wait()
	d.cancel()
}
