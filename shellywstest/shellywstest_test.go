package shellywstest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const devID = "shellyplus1pm-c049ef8cf4e0"

const fullStatus = `{"src":"` + devID + `","dst":"ws","method":"NotifyFullStatus",` +
	`"params":{"ts":1700000000.25,"sys":{"mac":"C049EF8CF4E0"},"ws":{"connected":true},"switch:0":{"id":0,"output":false}}}`

// testCtx returns a context bounded by DefaultTimeout, cancelled at cleanup.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), shellywstest.DefaultTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a bare coder/websocket client, the fake device, offering
// json-rpc; it is cut at cleanup.
func dial(t *testing.T, url string, client *http.Client) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{
		Subprotocols: []string{"json-rpc"},
		HTTPClient:   client,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func send(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	require.NoError(t, ws.Write(testCtx(t), websocket.MessageText, []byte(frame)))
}

// request is what the fake device decodes from a server request.
type request struct {
	ID     json.RawMessage `json:"id"`
	Src    string          `json:"src"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// answer runs the fake device's request loop on its own goroutine: each
// request gets answer's result or error. The loop ends when the connection
// does; cleanup cuts it and waits.
func answer(t *testing.T, ws *websocket.Conn, f func(req request) (any, *shellyws.Error)) {
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-done
	})
	go func() {
		defer close(done)
		ctx := context.Background()
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var req request
			if json.Unmarshal(data, &req) != nil || req.ID == nil {
				continue
			}
			res, rpcErr := f(req)
			resp := map[string]any{"id": req.ID, "src": devID, "dst": req.Src}
			if rpcErr != nil {
				resp["error"] = rpcErr
			} else {
				resp["result"] = res
			}
			b, _ := json.Marshal(resp)
			if ws.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
		}
	}()
}

// readErr reads on its own goroutine until the client's connection fails
// and delivers that error.
func readErr(ws *websocket.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-testCtx(t).Done():
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func waitDone(t *testing.T, c *shellywstest.Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("connection did not end")
	}
}

func TestAcceptAndNotifications(t *testing.T) {
	srv := shellywstest.NewServer(t, shellywstest.WithPath("shelly"))
	require.True(t, strings.HasPrefix(srv.URL(), "ws://127.0.0.1:"), srv.URL())
	require.True(t, strings.HasSuffix(srv.URL(), "/shelly"), srv.URL())
	assert.Nil(t, srv.CACertPEM())
	assert.Nil(t, srv.CertPool())

	ws := dial(t, srv.URL()+"?token=abc", nil)
	c := srv.AcceptT(t)
	assert.Equal(t, "json-rpc", c.Subprotocol())
	assert.Equal(t, "/shelly?token=abc", c.RequestURI())
	assert.True(t, strings.HasPrefix(c.RemoteAddr(), "127.0.0.1:"))

	send(t, ws, fullStatus)
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, devID, c.Src())
	assert.Equal(t, devID, fs.Src)
	assert.Equal(t, "ws", fs.Dst)
	assert.Equal(t, "NotifyFullStatus", fs.Method)
	assert.Equal(t, 1700000000.25, fs.TS)
	assert.JSONEq(t, `{"mac":"C049EF8CF4E0"}`, string(fs.Status["sys"]))
	assert.NotContains(t, fs.Status, "ts")
	assert.Len(t, fs.Status, 3)

	send(t, ws, `{"src":"`+devID+`","dst":"ws","method":"NotifyStatus","params":{"ts":1700000001.5,"switch:0":{"output":true},"input:1":null}}`)
	d := c.ExpectStatusT(t)
	assert.Equal(t, 1700000001.5, d.TS)
	assert.JSONEq(t, `{"output":true}`, string(d.Changes["switch:0"]))
	assert.Equal(t, "null", string(d.Changes["input:1"]))
	assert.Len(t, d.Changes, 2)

	send(t, ws, `{"src":"`+devID+`","dst":"ws","method":"NotifyEvent","params":{"ts":1700000002,"events":[`+
		`{"component":"input:0","id":0,"event":"single_push","ts":1700000002},`+
		`{"component":"sys","event":"config_changed","restart_required":false,"ts":1700000002.1,"cfg_rev":8}]}}`)
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 2)
	assert.Equal(t, "input:0", ev.Events[0].Component)
	require.NotNil(t, ev.Events[0].ID)
	assert.Equal(t, 0, *ev.Events[0].ID)
	assert.Equal(t, "single_push", ev.Events[0].Event)
	assert.Equal(t, "sys", ev.Events[1].Component)
	assert.Nil(t, ev.Events[1].ID)
	assert.Equal(t, 1700000002.1, ev.Events[1].TS)
	assert.Contains(t, string(ev.Events[1].Raw), `"cfg_rev":8`)

	send(t, ws, `{"src":"`+devID+`","dst":"ws","method":"NotifyCustom","params":{"x":1}}`)
	n, err := c.NextNotification(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, "NotifyCustom", n.Method)
	assert.Zero(t, n.TS)
}

func TestUnexpectedFrames(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)

	// A status delta where the full status belongs.
	send(t, ws, `{"src":"`+devID+`","dst":"ws","method":"NotifyStatus","params":{"ts":1}}`)
	_, err := c.ExpectFullStatus(testCtx(t))
	var ue *shellywstest.UnexpectedFrameError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "NotifyFullStatus", ue.Want)
	assert.Equal(t, "NotifyStatus", ue.Frame.Method)

	// Notifications that break the contract.
	for _, frame := range []string{
		`{"src":"d","method":"NotifyFullStatus","params":{"sys":{}}}`,
		`{"src":"d","method":"NotifyFullStatus","params":{"ts":"1"}}`,
		`{"src":"d","method":"NotifyFullStatus","params":[1]}`,
		`{"src":"d","method":"NotifyFullStatus"}`,
	} {
		send(t, ws, frame)
		_, err := c.ExpectFullStatus(testCtx(t))
		require.ErrorAs(t, err, &ue, frame)
		assert.JSONEq(t, frame, string(ue.Frame.Raw))
	}
	for _, frame := range []string{
		`{"src":"d","method":"NotifyEvent","params":{"ts":1}}`,
		`{"src":"d","method":"NotifyEvent","params":{"ts":1,"events":[{"component":"sys"}]}}`,
	} {
		send(t, ws, frame)
		_, err := c.ExpectEvent(testCtx(t))
		require.ErrorAs(t, err, &ue, frame)
	}

	// Malformed input reaches Next as it is.
	send(t, ws, `not json`)
	require.NoError(t, ws.Write(testCtx(t), websocket.MessageBinary, []byte{1, 2, 3}))
	send(t, ws, `[1,2]`)
	send(t, ws, `{"id":7,"src":"`+devID+`","result":{"late":true}}`)
	send(t, ws, `{"id":8,"src":"`+devID+`","method":"Server.Hello"}`)

	f := c.NextT(t)
	assert.Equal(t, "not json", string(f.Raw))
	assert.False(t, f.IsNotification() || f.IsResponse())
	f = c.NextT(t)
	assert.True(t, f.Binary)
	assert.Equal(t, []byte{1, 2, 3}, []byte(f.Raw))
	_, err = c.NextNotification(testCtx(t)) // [1,2]
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "not a JSON object")
	_, err = c.NextNotification(testCtx(t)) // the response nobody waits for
	require.ErrorAs(t, err, &ue)
	assert.True(t, ue.Frame.IsResponse())
	assert.Equal(t, "7", string(ue.Frame.ID))
	assert.JSONEq(t, `{"late":true}`, string(ue.Frame.Result))
	f = c.NextT(t)
	assert.Equal(t, "Server.Hello", f.Method)
	assert.Equal(t, "8", string(f.ID))
	assert.False(t, f.IsNotification())
}

func TestCall(t *testing.T) {
	srv := shellywstest.NewServer(t, shellywstest.WithSrc("FLEET_MANAGER"))
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	var mu sync.Mutex
	var seen []request
	answer(t, ws, func(req request) (any, *shellyws.Error) {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		switch req.Method {
		case "Shelly.GetDeviceInfo":
			return map[string]any{"id": devID, "gen": 2}, nil
		case "Shelly.Reboot":
			return nil, nil
		default:
			return nil, shellyws.Errorf(shellyws.CodeNoHandler, "No handler for %s", req.Method)
		}
	})

	var info struct {
		ID  string `json:"id"`
		Gen int    `json:"gen"`
	}
	require.NoError(t, c.Call(testCtx(t), "Shelly.GetDeviceInfo", nil, &info))
	assert.Equal(t, devID, info.ID)
	assert.Equal(t, 2, info.Gen)

	c.CallT(t, "Shelly.Reboot", map[string]int{"delay_ms": 3500}, nil)

	err := c.Call(testCtx(t), "Nope.Nothing", nil, nil)
	var rpcErr *shellyws.Error
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, 404, rpcErr.Code)
	assert.Equal(t, "No handler for Nope.Nothing", rpcErr.Message)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 3)
	for i, req := range seen {
		assert.Equal(t, fmt.Sprint(i+1), string(req.ID), "ids count from 1")
		assert.Equal(t, "FLEET_MANAGER", req.Src)
	}
	assert.Nil(t, seen[0].Params, "nil params are left out")
	assert.JSONEq(t, `{"delay_ms":3500}`, string(seen[1].Params))
	assert.Zero(t, shellywstest.PendingCalls(c))
}

func TestCallsConcurrent(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	answer(t, ws, func(req request) (any, *shellyws.Error) { return req.Params, nil })

	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var got struct{ N int }
			err := c.Call(testCtx(t), "Echo", struct{ N int }{i}, &got)
			if err == nil && got.N != i {
				err = fmt.Errorf("call %d got %d", i, got.N)
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, wait(t, errs))
	}
	assert.Zero(t, shellywstest.PendingCalls(c))
}

func TestCallCancelCleansUp(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)

	ctx, cancel := context.WithCancel(testCtx(t))
	callErr := make(chan error, 1)
	go func() { callErr <- c.Call(ctx, "Shelly.GetStatus", nil, nil) }()

	_, data, err := ws.Read(testCtx(t)) // the device gets the request, then sits on it
	require.NoError(t, err)
	assert.Equal(t, 1, shellywstest.PendingCalls(c))
	cancel()
	require.ErrorIs(t, wait(t, callErr), context.Canceled)
	assert.Zero(t, shellywstest.PendingCalls(c))

	// The late answer has nobody waiting: it goes to Next.
	var req request
	require.NoError(t, json.Unmarshal(data, &req))
	send(t, ws, `{"id":`+string(req.ID)+`,"src":"`+devID+`","result":{}}`)
	f := c.NextT(t)
	assert.True(t, f.IsResponse())
	assert.Equal(t, "1", string(f.ID))

	// A cancelled context sends nothing.
	require.ErrorIs(t, c.Call(ctx, "Shelly.GetStatus", nil, nil), context.Canceled)
	assert.Zero(t, shellywstest.PendingCalls(c))
}

func TestCallRawAndSend(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	answer(t, ws, func(req request) (any, *shellyws.Error) { return map[string]string{"m": req.Method}, nil })

	resp, err := c.CallRaw(testCtx(t), []byte(`{"id":"abc","method":"ws.getstatus"}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"abc","src":"`+devID+`","dst":"","result":{"m":"ws.getstatus"}}`, string(resp))

	resp, err = c.CallRaw(testCtx(t), []byte(`{"jsonrpc":"2.0", "id": 0, "method":"Sys.GetStatus"}`))
	require.NoError(t, err)
	assert.Contains(t, string(resp), `"id":0`)

	_, err = c.CallRaw(testCtx(t), []byte(`{"method":"Shelly.Reboot"}`))
	require.Error(t, err)
	_, err = c.CallRaw(testCtx(t), []byte(`nope`))
	require.Error(t, err)

	// Send does not wait; the response it provokes reaches Next.
	require.NoError(t, c.Send(testCtx(t), []byte(`{"id":99,"method":"X.Y"}`)))
	f := c.NextT(t)
	assert.Equal(t, "99", string(f.ID))
	assert.Zero(t, shellywstest.PendingCalls(c))
}

func TestRejectNext(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv.RejectNext(2, http.StatusServiceUnavailable)
	for range 2 {
		_, resp, err := websocket.Dial(testCtx(t), srv.URL(), nil)
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	}
	assert.Equal(t, 2, srv.Handshakes())

	dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	assert.Equal(t, 3, srv.Handshakes())
	assert.Equal(t, "json-rpc", c.Subprotocol())

	assert.Panics(t, func() { srv.RejectNext(1, 101) })
}

func TestWrongPath(t *testing.T) {
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/api/shelly/ws"))
	_, resp, err := websocket.Dial(testCtx(t), strings.TrimSuffix(srv.URL(), "/api/shelly/ws")+"/other", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, 1, srv.Handshakes())
}

func TestNoSubprotocol(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws, _, err := websocket.Dial(testCtx(t), srv.URL(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	assert.Equal(t, "", srv.AcceptT(t).Subprotocol())
}

func TestCloseConns(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws1 := dial(t, srv.URL(), nil)
	ws2 := dial(t, srv.URL(), nil)
	c1, c2 := srv.AcceptT(t), srv.AcceptT(t)
	e1, e2 := readErr(ws1), readErr(ws2)

	srv.CloseConns(4001, "go away")
	for _, e := range []<-chan error{e1, e2} {
		err := wait(t, e)
		assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(err), err)
	}
	for _, c := range []*shellywstest.Conn{c1, c2} {
		waitDone(t, c)
		require.ErrorIs(t, c.Err(), shellywstest.ErrClosedByServer)
		assert.Equal(t, websocket.StatusCode(4001), websocket.CloseStatus(c.Err()))
		_, err := c.Next(testCtx(t))
		require.ErrorIs(t, err, shellywstest.ErrConnClosed)
		require.ErrorIs(t, c.Call(testCtx(t), "X.Y", nil, nil), shellywstest.ErrConnClosed)
		require.NoError(t, c.Close(websocket.StatusNormalClosure, "")) // already gone
	}

	// The server still listens.
	dial(t, srv.URL(), nil)
	srv.AcceptT(t)
}

func TestDeviceCloses(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	require.Nil(t, c.Err())
	send(t, ws, fullStatus)
	require.NoError(t, ws.Close(websocket.StatusGoingAway, "rebooting"))
	waitDone(t, c)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(c.Err()), c.Err())

	// What came before the close is still there, then the cause.
	c.ExpectFullStatusT(t)
	_, err := c.Next(testCtx(t))
	require.ErrorIs(t, err, shellywstest.ErrConnClosed)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err))
}

func TestRestart(t *testing.T) {
	srv := shellywstest.NewServer(t)
	url := srv.URL()
	ws := dial(t, url, nil)
	c1 := srv.AcceptT(t)
	gone := readErr(ws)

	require.NoError(t, srv.Restart(testCtx(t)))
	assert.Equal(t, url, srv.URL())
	waitDone(t, c1)
	require.ErrorIs(t, c1.Err(), shellywstest.ErrClosedByServer)
	err := wait(t, gone)
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(err), "dropped without a close frame: %v", err)

	ws2 := dial(t, url, nil)
	c2 := srv.AcceptT(t)
	assert.NotSame(t, c1, c2)
	send(t, ws2, fullStatus)
	c2.ExpectFullStatusT(t)
	assert.Equal(t, 2, srv.Handshakes())
}

func TestStop(t *testing.T) {
	srv := shellywstest.NewServer(t)
	url := srv.URL()
	dial(t, url, nil) // never accepted: Stop discards it

	srv.Stop()
	srv.Stop() // no-op
	_, _, err := websocket.Dial(testCtx(t), url, nil)
	require.Error(t, err, "a stopped server refuses")

	require.NoError(t, srv.Restart(testCtx(t)))
	ws := dial(t, url, nil)
	c := srv.AcceptT(t)
	send(t, ws, fullStatus)
	c.ExpectFullStatusT(t) // the new connection, not the discarded one
}

func TestTLS(t *testing.T) {
	srv := shellywstest.NewTLSServer(t)
	require.True(t, strings.HasPrefix(srv.URL(), "wss://127.0.0.1:"), srv.URL())

	block, _ := pem.Decode(srv.CACertPEM())
	require.NotNil(t, block)
	ca, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.True(t, ca.IsCA)
	fromPEM := x509.NewCertPool()
	require.True(t, fromPEM.AppendCertsFromPEM(srv.CACertPEM()))

	for _, tc := range []struct {
		name string
		pool *x509.CertPool
		url  string
	}{
		{"CertPool", srv.CertPool(), srv.URL()},
		{"CACertPEM", fromPEM, srv.URL()},
		{"localhost", srv.CertPool(), strings.Replace(srv.URL(), "127.0.0.1", "localhost", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.pool}}
			t.Cleanup(tr.CloseIdleConnections)
			ws := dial(t, tc.url, &http.Client{Transport: tr})
			c := srv.AcceptT(t)
			send(t, ws, fullStatus)
			c.ExpectFullStatusT(t)
		})
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{}}
	t.Cleanup(tr.CloseIdleConnections)
	_, _, err = websocket.Dial(testCtx(t), srv.URL(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr, "without the CA the certificate does not verify")

	// The CA survives a restart.
	require.NoError(t, srv.Restart(testCtx(t)))
	tr2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fromPEM}}
	t.Cleanup(tr2.CloseIdleConnections)
	dial(t, srv.URL(), &http.Client{Transport: tr2})
	srv.AcceptT(t)
}

func TestQueueOverflow(t *testing.T) {
	const size = 4
	srv := shellywstest.NewServer(t, shellywstest.WithQueueSize(size))
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)

	for i := range size + 1 {
		send(t, ws, fmt.Sprintf(`{"src":"%s","dst":"ws","method":"NotifyStatus","params":{"ts":%d}}`, devID, i))
	}
	err := wait(t, readErr(ws))
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), err)
	waitDone(t, c)
	require.ErrorIs(t, c.Err(), shellywstest.ErrQueueOverflow)

	// The frames that fitted are kept, then the cause.
	for i := range size {
		d := c.ExpectStatusT(t)
		assert.Equal(t, float64(i), d.TS)
	}
	_, err = c.Next(testCtx(t))
	require.ErrorIs(t, err, shellywstest.ErrConnClosed)
	require.ErrorIs(t, err, shellywstest.ErrQueueOverflow)
}

func TestResponsesBypassTheQueue(t *testing.T) {
	// With a full queue, responses to calls still arrive.
	srv := shellywstest.NewServer(t, shellywstest.WithQueueSize(1))
	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	send(t, ws, fullStatus)
	answer(t, ws, func(request) (any, *shellyws.Error) { return true, nil })
	var ok bool
	c.CallT(t, "A.B", nil, &ok)
	assert.True(t, ok)
	c.ExpectFullStatusT(t)
}

func TestLogf(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	srv := shellywstest.NewServer(t, shellywstest.WithLogf(logf))
	srv.RejectNext(1, http.StatusServiceUnavailable)
	_, _, err := websocket.Dial(testCtx(t), srv.URL(), nil)
	require.Error(t, err)

	ws := dial(t, srv.URL(), nil)
	c := srv.AcceptT(t)
	big := `{"src":"` + devID + `","dst":"ws","method":"NotifyFullStatus","params":{"ts":1,"pad":"` + strings.Repeat("x", 500) + `"}}`
	send(t, ws, big)
	c.ExpectFullStatusT(t)
	answer(t, ws, func(request) (any, *shellyws.Error) { return map[string]int{"gen": 2}, nil })
	c.CallT(t, "Shelly.GetDeviceInfo", nil, nil)
	c.CallT(t, "Shelly.Reboot", map[string]int{"delay_ms": 3500}, nil)
	send(t, ws, "not\njson")
	send(t, ws, `{"src":"`+devID+`","method":"NotifyX"}`)
	send(t, ws, "{\n\"id\": 5,\n\"result\": null}")
	for range 3 {
		c.NextT(t)
	}
	require.NoError(t, c.Close(4001, "bye"))

	mu.Lock()
	defer mu.Unlock()
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"== listening " + srv.URL(),
		"== handshake 1 for / rejected with 503",
		"== connected 127.0.0.1:",
		"-> device " + devID + `: NotifyFullStatus {"ts":1,"pad":"xxx`,
		"<- server call Shelly.GetDeviceInfo id=1\n",
		"-> device " + devID + `: result id=1 {"gen":2}`,
		`<- server call Shelly.Reboot id=2 {"delay_ms":3500}`,
		"<- server close 4001 bye",
		"-> device " + devID + `: unexpected "not\njson"` + "\n",
		"-> device " + devID + ": NotifyX\n",
		"-> device " + devID + ": result id=5 null\n",
		"== device " + devID + " gone: ",
	} {
		assert.Contains(t, text, want)
	}
	for _, l := range lines {
		assert.Less(t, len(l), 300, "lines are cut: %s", l)
		assert.NotContains(t, l, "\n")
		assert.Equal(t, strings.TrimSpace(l), l)
	}
}

func TestLifecycle(t *testing.T) {
	srv := shellywstest.NewUnstartedServer()
	assert.Equal(t, "", srv.URL())
	require.Error(t, srv.Restart(testCtx(t)), "Restart before Start")
	require.NoError(t, srv.Start())
	require.Error(t, srv.Start(), "started twice")
	require.Error(t, srv.StartTLS(), "started twice")

	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err := srv.Accept(ctx)
	require.ErrorIs(t, err, context.Canceled)

	accepted := make(chan error, 1)
	go func() {
		_, err := srv.Accept(testCtx(t))
		accepted <- err
	}()
	srv.Close()
	require.ErrorIs(t, wait(t, accepted), shellywstest.ErrServerClosed)
	srv.Close() // idempotent
	require.ErrorIs(t, srv.Restart(testCtx(t)), shellywstest.ErrServerClosed)
	require.ErrorIs(t, srv.Start(), shellywstest.ErrServerClosed)
	_, err = srv.Accept(testCtx(t))
	require.ErrorIs(t, err, shellywstest.ErrServerClosed)
}

func TestCloseDropsConnections(t *testing.T) {
	srv := shellywstest.NewUnstartedServer()
	require.NoError(t, srv.StartTLS())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	t.Cleanup(tr.CloseIdleConnections)
	ws := dial(t, srv.URL(), &http.Client{Transport: tr})
	c := srv.AcceptT(t)
	gone := readErr(ws)
	callErr := make(chan error, 1)
	go func() { callErr <- c.Call(testCtx(t), "Shelly.GetStatus", nil, nil) }()

	srv.Close()
	waitDone(t, c)
	require.ErrorIs(t, wait(t, callErr), shellywstest.ErrConnClosed)
	require.Error(t, wait(t, gone))
}

// newDevice builds a shellyws device pointed at srv with fast reconnects.
func newDevice(t *testing.T, srv *shellywstest.Server) *shellyws.Component {
	t.Helper()
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	server := srv.URL()
	cfg.Server = &server
	dev, err := shellyws.New(devID, shellywstest.FastBackoff(), shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
	require.NoError(t, err)
	return dev
}

func TestRunComponentConnectsAndStops(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dev := newDevice(t, srv)
	var states []shellyws.State
	t.Run("device", func(t *testing.T) {
		shellywstest.RunComponent(t, dev)
		states = append(states, dev.State())
		conn := srv.AcceptT(t)
		conn.ExpectFullStatusT(t)
	})
	assert.Equal(t, []shellyws.State{shellyws.StateConnected}, states)
	assert.Equal(t, shellyws.StateClosed, dev.State(), "Run returned at the subtest's cleanup")
}

func TestFastBackoffReconnectsAfterServerBusy(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv.RejectNextWithHeader(2, http.StatusServiceUnavailable, http.Header{"Retry-After": {"300"}})
	dev := newDevice(t, srv)
	shellywstest.StartComponent(t, dev)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	assert.Equal(t, 3, srv.Handshakes())
	conn.Close(websocket.StatusTryAgainLater, "busy")
	srv.AcceptT(t).ExpectFullStatusT(t)
}

func TestRejectNextWithHeaderSendsIt(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv.RejectNextWithHeader(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"42"}})
	_, resp, err := websocket.Dial(testCtx(t), srv.URL(), nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "42", resp.Header.Get("Retry-After"))
	// Only the next one: the following handshake gets through.
	ws := dial(t, srv.URL(), nil)
	ws.CloseNow()
}

func TestNextMethodSkipsOtherNotifications(t *testing.T) {
	srv := shellywstest.NewServer(t)
	ws := dial(t, srv.URL(), nil)
	ctx := testCtx(t)
	conn := srv.AcceptT(t)
	for _, f := range []string{
		fullStatus,
		`{"src":"` + devID + `","dst":"ws","method":"NotifyStatus","params":{"ts":1,"switch:0":{"output":true}}}`,
		`{"src":"` + devID + `","dst":"ws","method":"NotifyEvent","params":{"ts":2,"events":[]}}`,
		`{"src":"` + devID + `","dst":"ws","method":"NotifyStatus","params":{"ts":3}}`,
		`{"id":9,"src":"` + devID + `","result":null}`,
		`{"src":"` + devID + `","dst":"ws","method":"NotifyEvent","params":{"ts":4,"events":[]}}`,
	} {
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(f)))
	}
	f, err := conn.NextMethod(ctx, "notifyevent")
	require.NoError(t, err)
	assert.Contains(t, string(f.Params), `"ts":2`)
	// A response in between is not skipped: it is reported.
	_, err = conn.NextMethod(ctx, "NotifyEvent")
	var ue *shellywstest.UnexpectedFrameError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, ue.Problem, "response")
	f = conn.NextMethodT(t, "NotifyEvent")
	assert.Contains(t, string(f.Params), `"ts":4`)
}

// The package doc says how many unread frames close a connection, with the
// number DefaultQueueSize holds.
func TestDocSaysWhenUnreadFramesCloseTheConnection(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	doc := strings.Join(strings.Fields(strings.ReplaceAll(string(src), "\n//", " ")), " ")
	n := shellywstest.DefaultQueueSize
	want := fmt.Sprintf("%d,%03d", n/1000, n%1000)
	assert.Contains(t, doc, want+" ([DefaultQueueSize]", "the limit, as the constant holds it")
	assert.Contains(t, doc, "closes the connection with 1008")
	assert.Contains(t, doc, "[ErrQueueOverflow]")
}
