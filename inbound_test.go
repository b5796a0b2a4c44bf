package shellyws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// deviceInfo is what Shelly.GetDeviceInfo answers in these tests.
const deviceInfo = `{"name":null,"id":"shellyplus1pm-c049ef8cf4e0","mac":"C049EF8CF4E0","slot":0,"model":"SNSW-001P16EU","gen":2,"fw_id":"20231107-164738/1.0.8-g8c7bb8d","ver":"1.0.8","app":"Plus1PM","auth_en":false,"auth_domain":null}`

// inboundDevice is a component with a Mux serving its Ws.* methods and a
// few test methods, behind a Handler on a loopback HTTP server.
type inboundDevice struct {
	c   *shellyws.Component
	mux *shellyws.Mux
	h   *shellyws.Handler
	srv *httptest.Server

	blockStarted chan struct{} // Test.Block signals here when it starts
	blockEnded   chan struct{} // and here when it returns
}

// newInboundDevice builds a component that does not dial out (its config is
// the factory default) and serves it on 127.0.0.1.
func newInboundDevice(t *testing.T, hopts []shellyws.HandlerOption, opts ...shellyws.Option) *inboundDevice {
	t.Helper()
	mux := shellyws.NewMux()
	c, err := shellyws.New(testDeviceID, append([]shellyws.Option{shellyws.WithDispatcher(mux)}, opts...)...)
	require.NoError(t, err)
	d := &inboundDevice{c: c, mux: mux, blockStarted: make(chan struct{}, 16), blockEnded: make(chan struct{}, 16)}
	d.register()
	d.serve(t, hopts...)
	return d
}

// register adds the component's methods and the test methods to d.mux.
func (d *inboundDevice) register() {
	d.c.Register(d.mux)
	addTestMethods(d.mux, d.c, d.blockStarted, d.blockEnded)
}

func addTestMethods(mux *shellyws.Mux, c *shellyws.Component, blockStarted, blockEnded chan<- struct{}) {
	var mu sync.Mutex
	output := false
	mux.HandleFunc("Switch.Toggle", func(_ context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			ID *int `json:"id"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		if p.ID == nil || *p.ID != 0 {
			return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id")
		}
		mu.Lock()
		was := output
		output = !output
		now := output
		mu.Unlock()
		if err := c.NotifyStatus(map[string]any{"switch:0": map[string]any{"id": 0, "output": now, "source": "WS_in"}}); err != nil {
			return nil, err
		}
		return map[string]bool{"was_on": was}, nil
	})
	mux.HandleFunc("Shelly.GetDeviceInfo", func(context.Context, *shellyws.Request) (any, error) {
		return json.RawMessage(deviceInfo), nil
	})
	mux.HandleFunc("Test.Echo", func(_ context.Context, req *shellyws.Request) (any, error) {
		if req.Params == nil {
			return nil, nil
		}
		return req.Params, nil
	})
	mux.HandleFunc("Test.Panic", func(context.Context, *shellyws.Request) (any, error) {
		panic("boom")
	})
	mux.HandleFunc("Test.Block", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		blockStarted <- struct{}{}
		defer func() { blockEnded <- struct{}{} }()
		<-ctx.Done()
		return nil, ctx.Err()
	})
}

// serve puts d.c behind a Handler on a loopback server. Cleanup closes the
// handler first (it waits for every websocket client) and then the server.
func (d *inboundDevice) serve(t *testing.T, hopts ...shellyws.HandlerOption) {
	t.Helper()
	d.h = shellyws.NewHandler(d.c, hopts...)
	d.srv = httptest.NewServer(d.h)
	t.Cleanup(d.srv.Close)
	t.Cleanup(d.h.Close)
}

func (d *inboundDevice) wsURL() string { return "ws" + strings.TrimPrefix(d.srv.URL, "http") + "/rpc" }

// httpResult is what an HTTP exchange returned.
type httpResult struct {
	status int
	header http.Header
	body   string
}

func (d *inboundDevice) do(t *testing.T, req *http.Request) httpResult {
	t.Helper()
	resp, err := d.srv.Client().Do(req.WithContext(testCtx(t)))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// get sends GET with path and rawQuery exactly as given, unescaped
// characters included, as a browser address bar or curl would.
func (d *inboundDevice) get(t *testing.T, path, rawQuery string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.srv.URL+path, nil)
	require.NoError(t, err)
	req.URL.RawQuery = rawQuery
	return d.do(t, req)
}

func (d *inboundDevice) post(t *testing.T, path, body string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	return d.do(t, req)
}

// dial opens an inbound websocket client; cleanup closes it.
func (d *inboundDevice) dial(t *testing.T, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{shellyws.Subprotocol}}
	}
	opts.HTTPClient = d.srv.Client()
	conn, _, err := websocket.Dial(testCtx(t), d.wsURL(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// wsFrame is a frame the device sent to an inbound websocket client.
type wsFrame struct {
	raw    string
	ID     json.RawMessage `json:"id"`
	Src    string          `json:"src"`
	Dst    string          `json:"dst"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *shellyws.Error `json:"error"`
}

func readFrame(t *testing.T, ctx context.Context, conn *websocket.Conn) wsFrame {
	t.Helper()
	typ, data, err := conn.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	var f wsFrame
	require.NoError(t, json.Unmarshal(data, &f), "frame %s", data)
	f.raw = string(data)
	return f
}

func writeFrame(t *testing.T, ctx context.Context, conn *websocket.Conn, f string) {
	t.Helper()
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(f)))
}

// call sends a request frame and returns the response with its id,
// collecting the notifications that arrive meanwhile.
func call(t *testing.T, ctx context.Context, conn *websocket.Conn, req string) (resp wsFrame, notes []wsFrame) {
	t.Helper()
	var sent struct {
		ID json.RawMessage `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(req), &sent))
	writeFrame(t, ctx, conn, req)
	for {
		f := readFrame(t, ctx, conn)
		if f.Method != "" {
			notes = append(notes, f)
			continue
		}
		require.Equal(t, string(sent.ID), string(f.ID), "response to another request: %s", f.raw)
		return f, notes
	}
}

func TestInboundHTTPGetSeedExamples(t *testing.T) {
	d := newInboundDevice(t, nil)
	steps := []struct {
		name, path, rawQuery string
		want                 string
	}{
		{"SetConfig URL-encoded", "/rpc/Ws.SetConfig", "config=" + url.QueryEscape(`{"ssl_ca":"*"}`), `{"restart_required":true}`},
		{"SetConfig raw as the vendor page shows it", "/rpc/Ws.SetConfig", `config={"ssl_ca":"*"}`, `{"restart_required":true}`},
		{"GetConfig", "/rpc/Ws.GetConfig", "", `{"enable":false,"server":null,"ssl_ca":"*"}`},
		{"GetStatus", "/rpc/Ws.GetStatus", "", `{"connected":false}`},
		{"method case ignored", "/rpc/ws.getstatus", "", `{"connected":false}`},
		{"unknown query names ignored by the handler", "/rpc/Ws.GetConfig", "x=1", `{"enable":false,"server":null,"ssl_ca":"*"}`},
		{"device info", "/shelly", "", deviceInfo},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			res := d.get(t, s.path, s.rawQuery)
			assert.Equal(t, http.StatusOK, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			assert.Equal(t, s.want, res.body)
		})
	}
	ssl := "*"
	assert.Equal(t, shellyws.Config{SSLCA: &ssl}, d.c.GetConfig())
}

func TestInboundHTTPGetQueryParams(t *testing.T) {
	d := newInboundDevice(t, nil)
	tests := []struct {
		name, rawQuery, want string
	}{
		{"scalars", "id=0&on=true", `{"id":0,"on":true}`},
		{"bare word is a string", "name=kitchen", `{"name":"kitchen"}`},
		{"quoted keyword is a string", "name=%22true%22", `{"name":"true"}`},
		{"null", "server=null", `{"server":null}`},
		{"empty value is an empty string", "name=", `{"name":""}`},
		{"name without value", "name", `{"name":""}`},
		{"object raw", `config={"ssl_ca":"*","enable":false}`, `{"config":{"ssl_ca":"*","enable":false}}`},
		{"object encoded", "config=" + url.QueryEscape(`{"server":"ws://h:1/x?a=1&b=2"}`), `{"config":{"server":"ws://h:1/x?a=1&b=2"}}`},
		{"invalid JSON is a string", "config=%7Bssl_ca", `{"config":"{ssl_ca"}`},
		{"escaped string", "s=a%20b+c%22", `{"s":"a b c\""}`},
		{"number forms", "a=-1.5e3&b=12345678901234567890", `{"a":-1.5e3,"b":12345678901234567890}`},
		{"order kept", "z=1&a=2&m=3", `{"z":1,"a":2,"m":3}`},
		{"empty parts skipped", "&a=1&&b=2&", `{"a":1,"b":2}`},
		{"no query means no params", "", `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := d.get(t, "/rpc/Test.Echo", tt.rawQuery)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Equal(t, tt.want, res.body)
		})
	}
}

func TestInboundHTTPPostParams(t *testing.T) {
	d := newInboundDevice(t, nil)
	tests := []struct {
		name, path, body, want string
	}{
		{"body", "/rpc/Test.Echo", `{"id":0, "on":true}`, `{"id":0, "on":true}`},
		{"empty body uses the query", "/rpc/Test.Echo?id=0&on=true", ``, `{"id":0,"on":true}`},
		{"body wins over the query", "/rpc/Test.Echo?id=1", `{"id":0}`, `{"id":0}`},
		{"null body", "/rpc/Test.Echo", `null`, `null`},
		{"seed params", "/rpc/Ws.SetConfig", `{"config":{"ssl_ca":"*"}}`, `{"restart_required":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := d.post(t, tt.path, tt.body)
			require.Equal(t, http.StatusOK, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			assert.Equal(t, tt.want, res.body)
		})
	}
}

func TestInboundHTTPPostFrameSeedExamples(t *testing.T) {
	d := newInboundDevice(t, nil)
	steps := []struct {
		name, body, want string
	}{
		{
			"SetConfig",
			`{"id":1,"method":"Ws.SetConfig","params":{"config":{"ssl_ca":"*"}}}`,
			`{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","result":{"restart_required":true}}`,
		},
		{
			"GetConfig",
			`{"id":1,"method":"Ws.GetConfig"}`,
			`{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","result":{"enable":false,"server":null,"ssl_ca":"*"}}`,
		},
		{
			"GetStatus",
			`{"id":1,"method":"Ws.GetStatus"}`,
			`{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","result":{"connected":false}}`,
		},
		{
			"src becomes dst and a string id is echoed verbatim",
			`{"jsonrpc":"2.0","id":"a\u0062","src":"user_1","method":"ws.getstatus","params":{}}`,
			`{"id":"a\u0062","src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":{"connected":false}}`,
		},
		{
			"id 0",
			`{"id":0,"method":"Ws.GetStatus"}`,
			`{"id":0,"src":"shellyplus1pm-c049ef8cf4e0","result":{"connected":false}}`,
		},
		{
			"RPC errors are answered 200 in the frame",
			`{"id":2,"src":"user_1","method":"Nope.Nothing"}`,
			`{"id":2,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","error":{"code":404,"message":"No handler for Nope.Nothing"}}`,
		},
		{
			"handler's own error",
			`{"id":3,"method":"Switch.Toggle","params":{"id":7}}`,
			`{"id":3,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":-105,"message":"Bad id"}}`,
		},
		{
			"a panic is a 500",
			`{"id":4,"method":"Test.Panic"}`,
			`{"id":4,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":500,"message":"Internal error in Test.Panic"}}`,
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			res := d.post(t, "/rpc", s.body)
			assert.Equal(t, http.StatusOK, res.status)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			assert.Equal(t, s.want, res.body)
		})
	}

	t.Run("without id it runs and answers an empty 200", func(t *testing.T) {
		res := d.post(t, "/rpc", `{"method":"Ws.SetConfig","params":{"config":{"ssl_ca":"user_ca.pem"}}}`)
		assert.Equal(t, http.StatusOK, res.status)
		assert.Empty(t, res.body)
		assert.Equal(t, "user_ca.pem", *d.c.GetConfig().SSLCA)
	})
}

func TestInboundHTTPErrors(t *testing.T) {
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithMaxRequestSize(1024)})
	big := `{"id":1,"method":"Test.Echo","params":{"x":"` + strings.Repeat("x", 2048) + `"}}`
	tests := []struct {
		name, method, path, rawQuery, body string
		status                             int
		code                               int
		message                            string // a substring
		allow                              string
	}{
		{"unknown method GET", "GET", "/rpc/Nope.Nothing", "", "", 404, 404, "No handler for Nope.Nothing", ""},
		{"unknown method POST", "POST", "/rpc/Nope.Nothing", "", "", 404, 404, "No handler for Nope.Nothing", ""},
		{"invalid argument is a 500", "GET", "/rpc/Ws.SetConfig", `config={"ssl_ca":"bad"}`, "", 500, -103, "ssl_ca", ""},
		{"bad query JSON reaches the method as a string", "GET", "/rpc/Ws.SetConfig", "config=%7Bssl_ca", "", 500, -103, "", ""},
		{"not found is a 500", "GET", "/rpc/Switch.Toggle", "id=7", "", 500, -105, "Bad id", ""},
		{"panic", "GET", "/rpc/Test.Panic", "", "", 500, 500, "Internal error in Test.Panic", ""},
		{"bad escape in query", "GET", "/rpc/Test.Echo", "id=%zz", "", 400, -103, "escape", ""},
		{"argument twice", "GET", "/rpc/Test.Echo", "id=1&id=2", "", 400, -103, "'id' given twice", ""},
		{"argument without name", "GET", "/rpc/Test.Echo", "=1", "", 400, -103, "without a name", ""},
		{"query too long", "GET", "/rpc/Test.Echo", "x=" + strings.Repeat("y", 2048), "", 414, -108, "1024", ""},
		{"frame not JSON", "POST", "/rpc", "", `{"id":1,`, 400, -103, "not valid JSON", ""},
		{"frame not an object", "POST", "/rpc", "", `[{"id":1,"method":"Ws.GetStatus"}]`, 400, -103, "not a JSON object", ""},
		{"frame without method", "POST", "/rpc", "", `{"id":1,"src":"x"}`, 400, -103, "no method", ""},
		{"frame with a bad id", "POST", "/rpc", "", `{"id":{},"method":"Ws.GetStatus"}`, 400, -103, "id", ""},
		{"empty frame", "POST", "/rpc", "", ``, 400, -103, "", ""},
		{"frame too large", "POST", "/rpc", "", big, 413, -108, "1024", ""},
		{"params body too large", "POST", "/rpc/Test.Echo", "", big, 413, -108, "1024", ""},
		{"params body not an object", "POST", "/rpc/Test.Echo", "", `[1]`, 400, -103, "JSON object", ""},
		{"params body not JSON", "POST", "/rpc/Test.Echo", "", `{x`, 400, -103, "JSON object", ""},
		{"GET /rpc without upgrade", "GET", "/rpc", "", "", 400, -103, "Missing method", ""},
		{"empty method", "GET", "/rpc/", "", "", 400, -103, "Missing method", ""},
		{"unknown path", "GET", "/status", "", "", 404, 404, "Not found", ""},
		{"unknown path under rpc", "GET", "/rpcx", "", "", 404, 404, "Not found", ""},
		{"PUT /rpc", "PUT", "/rpc", "", "{}", 405, 405, "not allowed", "GET, POST"},
		{"DELETE /rpc/method", "DELETE", "/rpc/Ws.GetConfig", "", "", 405, 405, "not allowed", "GET, POST"},
		{"POST /shelly", "POST", "/shelly", "", "{}", 405, 405, "not allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, d.srv.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.URL.RawQuery = tt.rawQuery
			res := d.do(t, req)
			assert.Equal(t, tt.status, res.status, res.body)
			assert.Equal(t, "application/json", res.header.Get("Content-Type"))
			var e shellyws.Error
			require.NoError(t, json.Unmarshal([]byte(res.body), &e), "body %q", res.body)
			assert.Equal(t, tt.code, e.Code, res.body)
			assert.Contains(t, e.Message, tt.message)
			assert.Equal(t, tt.allow, res.header.Get("Allow"))
		})
	}
	ca := "ca.pem"
	assert.Equal(t, shellyws.Config{SSLCA: &ca}, d.c.GetConfig(), "failed calls leave the config alone")
}

func TestInboundHTTPDeviceInfoWithoutHandler(t *testing.T) {
	c, err := shellyws.New(testDeviceID) // the default Mux: Ws.* only
	require.NoError(t, err)
	d := &inboundDevice{c: c}
	d.serve(t)
	res := d.get(t, "/shelly", "")
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, `{"code":404,"message":"No handler for Shelly.GetDeviceInfo"}`, res.body)
	res = d.get(t, "/rpc/Ws.GetStatus", "")
	assert.Equal(t, `{"connected":false}`, res.body)
}

func TestInboundWebsocketSeedExamples(t *testing.T) {
	d := newInboundDevice(t, nil)
	ctx := testCtx(t)
	for _, offer := range []bool{true, false} {
		t.Run(fmt.Sprintf("subprotocol offered %v", offer), func(t *testing.T) {
			opts := &websocket.DialOptions{}
			want := ""
			if offer {
				opts.Subprotocols = []string{shellyws.Subprotocol}
				want = shellyws.Subprotocol
			}
			conn := d.dial(t, opts)
			assert.Equal(t, want, conn.Subprotocol())
			steps := []struct{ req, want string }{
				{
					`{"id":1,"src":"user_1","method":"Ws.SetConfig","params":{"config":{"ssl_ca":"*"}}}`,
					`{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":{"restart_required":true}}`,
				},
				{
					`{"id":2,"method":"Ws.GetConfig"}`,
					`{"id":2,"src":"shellyplus1pm-c049ef8cf4e0","result":{"enable":false,"server":null,"ssl_ca":"*"}}`,
				},
				{
					`{"id":"x","src":"user_1","method":"WS.GetStatus"}`,
					`{"id":"x","src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":{"connected":false}}`,
				},
				{
					`{"id":3,"src":"user_1","method":"Nope.Nothing"}`,
					`{"id":3,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","error":{"code":404,"message":"No handler for Nope.Nothing"}}`,
				},
			}
			for _, s := range steps {
				resp, _ := call(t, ctx, conn, s.req)
				assert.Equal(t, s.want, resp.raw)
			}
		})
	}
}

func TestInboundWebsocketNotificationsFollowSrc(t *testing.T) {
	d := newInboundDevice(t, nil)
	ctx := testCtx(t)

	listener := d.dial(t, nil) // will send a src
	silent := d.dial(t, nil)   // never sends a src

	// Before any src, nothing is sent to anyone.
	resp, notes := call(t, ctx, listener, `{"id":1,"method":"Ws.GetStatus"}`)
	require.Nil(t, resp.Error)
	require.Empty(t, notes)
	require.NoError(t, d.c.NotifyStatus(map[string]any{"before": 1}))

	// The request with a src, whose handler publishes a NotifyStatus.
	resp, notes = call(t, ctx, listener, `{"id":2,"src":"user_1","method":"Switch.Toggle","params":{"id":0}}`)
	assert.JSONEq(t, `{"was_on":false}`, string(resp.Result))
	if len(notes) == 0 {
		notes = append(notes, readFrame(t, ctx, listener))
	}
	require.Len(t, notes, 1)
	n := notes[0]
	assert.Equal(t, methodNotifyStatus, n.Method)
	assert.Equal(t, testDeviceID, n.Src)
	assert.Equal(t, "user_1", n.Dst)
	assert.NotContains(t, n.raw, "before")
	var params map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(n.Params, &params))
	assert.JSONEq(t, `{"id":0,"output":true,"source":"WS_in"}`, string(params["switch:0"]))
	assert.Contains(t, params, "ts")

	// Events go the same way, and the first src is kept.
	resp, _ = call(t, ctx, listener, `{"id":3,"src":"user_2","method":"Ws.GetStatus"}`)
	assert.Equal(t, "user_2", resp.Dst, "a response goes to the src of its request")
	zero := 0
	require.NoError(t, d.c.NotifyEvent(shellyws.Event{Component: "input:0", ID: &zero, Event: "single_push"}))
	n = readFrame(t, ctx, listener)
	assert.Equal(t, methodNotifyEvent, n.Method)
	assert.Equal(t, "user_1", n.Dst)
	assert.Contains(t, string(n.Params), `"event":"single_push"`)

	// The client without a src got none of it: its next frame is the
	// response to its next request.
	resp, notes = call(t, ctx, silent, `{"id":1,"method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error)
	assert.Empty(t, notes)
}

func TestInboundWebsocketBadInputKeepsTheClient(t *testing.T) {
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithMaxRequestSize(1024)})
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	bad := []string{
		`not json`,
		`[{"id":1,"method":"Ws.GetStatus"}]`,
		`{"id":{},"method":"Ws.GetStatus"}`,
		`{"method":5}`, // with an id it is answered -103: TestBadMethodWithAnIDIsAnswered
		`{"id":1,"src":1,"method":"Ws.GetStatus"}`,
		`{"id":1,"result":{}}`,
		`{"id":1,"method":"Ws.GetStatus"`,
		``,
	}
	for _, f := range bad {
		writeFrame(t, ctx, conn, f)
	}
	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, []byte(`{"id":9,"method":"Ws.GetStatus"}`)))
	writeFrame(t, ctx, conn, `{"method":"Ws.GetStatus"}`) // no id: runs, no answer
	resp, notes := call(t, ctx, conn, `{"id":10,"method":"Ws.GetStatus"}`)
	assert.Equal(t, `{"id":10,"src":"shellyplus1pm-c049ef8cf4e0","result":{"connected":false}}`, resp.raw)
	assert.Empty(t, notes)

	// A message over the limit ends only that client, with 1009.
	other := d.dial(t, nil)
	writeFrame(t, ctx, conn, `{"id":11,"method":"Test.Echo","params":{"x":"`+strings.Repeat("x", 2048)+`"}}`)
	_, _, err := conn.Read(ctx)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "err %v", err)
	resp, _ = call(t, ctx, other, `{"id":1,"method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error)
}

func TestInboundWebsocketMaxClients(t *testing.T) {
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithMaxClients(2)})
	ctx := testCtx(t)
	d.dial(t, nil)
	d.dial(t, nil)
	_, resp, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	// HTTP is not limited by the websocket clients.
	assert.Equal(t, http.StatusOK, d.get(t, "/rpc/Ws.GetStatus", "").status)
}

func TestInboundWebsocketAnyOriginByDefault(t *testing.T) {
	tests := []struct {
		name    string
		hopts   []shellyws.HandlerOption
		origin  string
		allowed bool
	}{
		{"default accepts a foreign origin", nil, "http://example.com", true},
		{"patterns reject a foreign origin", []shellyws.HandlerOption{shellyws.WithOriginPatterns("ui.example.org")}, "http://example.com", false},
		{"patterns accept a listed origin", []shellyws.HandlerOption{shellyws.WithOriginPatterns("ui.example.org")}, "http://ui.example.org", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newInboundDevice(t, tt.hopts)
			hdr := http.Header{"Origin": []string{tt.origin}}
			conn, resp, err := websocket.Dial(testCtx(t), d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client(), HTTPHeader: hdr})
			if !tt.allowed {
				require.Error(t, err)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode)
				return
			}
			require.NoError(t, err)
			conn.CloseNow()
		})
	}
}

func TestInboundSlowClientDoesNotBlockNotify(t *testing.T) {
	const (
		notifications = 10000
		payloadSize   = 4 << 10 // 40 MB in all: more than loopback socket buffers hold
		queueSize     = 8
	)
	d := newInboundDevice(t,
		[]shellyws.HandlerOption{shellyws.WithClientQueueSize(queueSize), shellyws.WithMaxRequestSize(1 << 20)},
		shellyws.WithWriteTimeout(time.Minute)) // the slow client must survive the test
	ctx := testCtx(t)

	slow := d.dial(t, nil)
	fast := d.dial(t, nil)
	slow.SetReadLimit(1 << 20)
	fast.SetReadLimit(1 << 20)
	call(t, ctx, slow, `{"id":1,"src":"slow","method":"Ws.GetStatus"}`)
	call(t, ctx, fast, `{"id":1,"src":"fast","method":"Ws.GetStatus"}`)

	// The fast client reads everything it gets until the last notification.
	type seen struct {
		count, last int
		err         error
	}
	readUntilLast := func(conn *websocket.Conn) seen {
		var s seen
		s.last = -1
		for s.last != notifications-1 {
			_, data, err := conn.Read(ctx)
			if err != nil {
				s.err = err
				return s
			}
			var f struct {
				Params struct {
					Seq int `json:"seq"`
				} `json:"params"`
			}
			if err := json.Unmarshal(data, &f); err != nil {
				s.err = err
				return s
			}
			if f.Params.Seq <= s.last {
				s.err = fmt.Errorf("seq %d after %d", f.Params.Seq, s.last)
				return s
			}
			s.count++
			s.last = f.Params.Seq
		}
		return s
	}
	fastDone := make(chan seen, 1)
	go func() { fastDone <- readUntilLast(fast) }()

	// The slow client reads nothing meanwhile; publishing must not wait.
	payload := strings.Repeat("x", payloadSize)
	published := make(chan error, 1)
	go func() {
		for i := range notifications {
			if err := d.c.NotifyStatus(map[string]any{"seq": i, "big": payload}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	select {
	case err := <-published:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("NotifyStatus blocked behind a client that does not read")
	}
	var f seen
	select {
	case f = <-fastDone:
	case <-ctx.Done():
		t.Fatal("the fast client did not get the last notification")
	}
	require.NoError(t, f.err)
	assert.Equal(t, notifications-1, f.last)

	// The slow client, reading at last, gets what the socket held and then
	// the newest notifications: the oldest were dropped, never the last.
	s := readUntilLast(slow)
	require.NoError(t, s.err)
	assert.Equal(t, notifications-1, s.last)
	assert.Less(t, s.count, notifications, "a client that falls behind loses the oldest notifications")
	t.Logf("of %d notifications the fast client got %d, the slow one %d", notifications, f.count, s.count)

	// Both clients still answer requests.
	resp, _ := call(t, ctx, slow, `{"id":2,"method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error)
	resp, _ = call(t, ctx, fast, `{"id":2,"method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error)
}

func TestInboundHandlerCloseEndsClientsAndHandlers(t *testing.T) {
	d := newInboundDevice(t, nil)
	ctx := testCtx(t)
	conns := []*websocket.Conn{d.dial(t, nil), d.dial(t, nil)}
	// A request whose handler runs until its context ends.
	writeFrame(t, ctx, conns[0], `{"id":1,"src":"a","method":"Test.Block"}`)
	select {
	case <-d.blockStarted:
	case <-ctx.Done():
		t.Fatal("Test.Block did not start")
	}
	// An HTTP request blocked the same way.
	httpDone := make(chan httpResult, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, d.srv.URL+"/rpc/Test.Block", nil)
		resp, err := d.srv.Client().Do(req.WithContext(ctx))
		if err != nil {
			httpDone <- httpResult{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		httpDone <- httpResult{status: resp.StatusCode, body: string(body)}
	}()
	select {
	case <-d.blockStarted:
	case <-ctx.Done():
		t.Fatal("Test.Block over HTTP did not start")
	}

	closed := make(chan struct{})
	go func() {
		d.h.Close()
		close(closed)
	}()
	for _, conn := range conns {
		_, _, err := conn.Read(ctx)
		assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "err %v", err)
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	select {
	case res := <-httpDone:
		assert.Equal(t, http.StatusInternalServerError, res.status, res.body)
		assert.Contains(t, res.body, "context canceled")
	case <-ctx.Done():
		t.Fatal("the HTTP request's context did not end with Close")
	}

	// After Close: 503 for everything, websocket included; Close again is a no-op.
	res := d.get(t, "/rpc/Ws.GetStatus", "")
	assert.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.JSONEq(t, `{"code":-114,"message":"Shutting down"}`, res.body)
	_, resp, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	d.h.Close()
}

func TestInboundWhileOutboundRuns(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	c := startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux))
	c.Register(mux)
	addTestMethods(mux, c, make(chan struct{}, 1), make(chan struct{}, 1))
	d := &inboundDevice{c: c, mux: mux}
	d.serve(t)
	ctx := testCtx(t)

	out := srv.AcceptT(t)
	out.ExpectFullStatusT(t)
	require.NoError(t, c.AwaitConnected(ctx))

	for round := range 3 {
		// Inbound clients come…
		listener := d.dial(t, nil)
		silent := d.dial(t, nil)
		call(t, ctx, silent, `{"id":1,"method":"Ws.GetStatus"}`)

		// …a toggle over HTTP reaches the outbound server and the listener.
		call(t, ctx, listener, fmt.Sprintf(`{"id":1,"src":"ui_%d","method":"Ws.GetStatus"}`, round))
		res := d.get(t, "/rpc/Switch.Toggle", "id=0")
		require.Equal(t, http.StatusOK, res.status, res.body)
		delta := out.ExpectStatusT(t)
		assert.Equal(t, "ws", delta.Dst)
		n := readFrame(t, ctx, listener)
		assert.Equal(t, fmt.Sprintf("ui_%d", round), n.Dst)
		assert.Equal(t, methodNotifyStatus, n.Method)
		// The outbound and inbound notification carry the same params.
		assert.JSONEq(t, string(delta.Params), string(n.Params))

		// The outbound channel answers while inbound clients are connected,
		// and the same request gives the same bytes on every channel.
		for _, req := range []string{
			`{"id":7,"src":"fm","method":"Ws.GetStatus"}`,
			`{"id":"q","method":"Nope.Nothing"}`,
		} {
			want, err := out.CallRaw(ctx, []byte(req))
			require.NoError(t, err)
			assert.Equal(t, string(want), d.post(t, "/rpc", req).body)
			resp, notes := call(t, ctx, silent, req)
			assert.Equal(t, string(want), resp.raw)
			assert.Empty(t, notes, "a client that sent no src gets no notification")
		}

		// …and go.
		listener.Close(websocket.StatusNormalClosure, "")
		silent.CloseNow()
		var st struct {
			Connected bool `json:"connected"`
		}
		out.CallT(t, "Ws.GetStatus", nil, &st)
		assert.True(t, st.Connected)
	}

	// A toggle over the outbound channel still notifies the outbound server.
	var was map[string]bool
	out.CallT(t, "Switch.Toggle", map[string]int{"id": 0}, &was)
	delta := out.ExpectStatusT(t)
	assert.Contains(t, delta.Changes, "switch:0")
}

func TestInboundRequestContextEndsWithHTTPClient(t *testing.T) {
	d := newInboundDevice(t, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.srv.URL+"/rpc", bytes.NewReader([]byte(`{"id":1,"method":"Test.Block"}`)))
		resp, err := d.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-d.blockStarted:
	case <-ctx.Done():
		t.Fatal("Test.Block did not start")
	}
	cancel() // the client goes away: the handler's context must end
	select {
	case <-d.blockEnded:
	case <-time.After(waitTimeout):
		t.Fatal("the handler's context did not end when the client went away")
	}
	assert.True(t, errors.Is(<-errc, context.Canceled))
}
