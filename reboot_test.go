package shellyws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// awaitChan waits for one value on ch within waitTimeout.
func awaitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A handler restarting the component from AfterReply never loses its
// reply. Before AfterReply, a handler could only call Restart itself (or on
// a goroutine), which lost the reply in 4 of 20 runs.
func TestAfterReplyRestartKeepsTheReply(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	var dev *shellyws.Component
	mux.HandleFunc("Test.Restart", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		if !shellyws.AfterReply(ctx, dev.Restart) {
			return nil, shellyws.Errorf(shellyws.CodeInternal, "not a request context")
		}
		return map[string]bool{"restarting": true}, nil
	})
	dev = startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux))
	ctx := testCtx(t)
	for round := range 20 {
		conn := acceptConnected(t, ctx, srv)
		var res struct {
			Restarting bool `json:"restarting"`
		}
		require.NoError(t, conn.Call(ctx, "Test.Restart", nil, &res), "round %d", round)
		require.True(t, res.Restarting)
		awaitChan(t, conn.Done(), "the restart to close the connection")
		assert.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(conn.Err()), "round %d", round)
	}
	acceptConnected(t, ctx, srv)
}

// AfterReply's function runs on every channel, on a goroutine of its own
// once the reply is out: the client has its reply while the function still
// blocks. Request.Channel names the channel.
func TestAfterReplyOnEveryChannel(t *testing.T) {
	srv := shellywstest.NewServer(t)
	started := make(chan shellyws.Channel, 3)
	release := make(chan struct{})
	d := newInboundDevice(t, nil, append(fastOptions(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))))...)
	d.mux.HandleFunc("Test.After", func(ctx context.Context, req *shellyws.Request) (any, error) {
		ch := req.Channel
		ok := shellyws.AfterReply(ctx, func() {
			started <- ch
			<-release
		})
		return map[string]any{"ok": ok, "channel": ch.String()}, nil
	})
	runDevice(t, d.c)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before Run and Handler.Close wait for the functions
	ctx := testCtx(t)

	type answer struct {
		OK      bool   `json:"ok"`
		Channel string `json:"channel"`
	}
	conn := acceptConnected(t, ctx, srv)
	var a answer
	require.NoError(t, conn.Call(ctx, "Test.After", nil, &a))
	assert.Equal(t, answer{true, "outbound"}, a)
	assert.Equal(t, shellyws.ChannelOutbound, awaitChan(t, started, "the outbound function"))

	ws := d.dial(t, nil)
	resp, _ := call(t, ctx, ws, `{"id":1,"src":"cli","method":"Test.After"}`)
	require.Nil(t, resp.Error)
	require.NoError(t, json.Unmarshal(resp.Result, &a))
	assert.Equal(t, answer{true, "inbound_websocket"}, a)
	assert.Equal(t, shellyws.ChannelInboundWebsocket, awaitChan(t, started, "the websocket function"))

	r := d.get(t, "/rpc/Test.After", "")
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), &a))
	assert.Equal(t, answer{true, "http"}, a)
	assert.Equal(t, shellyws.ChannelHTTP, awaitChan(t, started, "the HTTP function"))

	// Three functions block at once: none held up its connection.
	releaseOnce()
}

// Outside a handler, or once the handler returned, AfterReply refuses.
func TestAfterReplyOutsideARequest(t *testing.T) {
	assert.False(t, shellyws.AfterReply(context.Background(), func() { t.Error("ran") }))

	d := newInboundDevice(t, nil)
	ctxs := make(chan context.Context, 1)
	d.mux.HandleFunc("Test.Keep", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		ctxs <- ctx
		return nil, nil
	})
	r := d.get(t, "/rpc/Test.Keep", "")
	require.Equal(t, http.StatusOK, r.status)
	ctx := awaitChan(t, ctxs, "the handler")
	assert.False(t, shellyws.AfterReply(ctx, func() { t.Error("ran after the handler returned") }))
}

// Reboot drops every inbound websocket client without a close frame, and
// the Handler answers 503 until the device is back.
func TestRebootDropsInboundWebsocketClients(t *testing.T) {
	srv := shellywstest.NewServer(t)
	rebooted := make(chan struct{}, 1)
	bootGate := make(chan struct{})
	d := newInboundDevice(t, nil, append(fastOptions(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))),
		shellyws.WithBootTime(0),
		shellyws.WithOnReboot(func() { rebooted <- struct{}{} }),
		shellyws.WithOnBoot(func() { <-bootGate }))...)
	runDevice(t, d.c)
	openGate := sync.OnceFunc(func() { close(bootGate) })
	t.Cleanup(openGate)
	ctx := testCtx(t)

	conn := acceptConnected(t, ctx, srv)
	// The server may read the full status an instant before the device's
	// write returns and it counts itself connected.
	require.NoError(t, d.c.AwaitConnected(ctx))
	ws1, ws2 := d.dial(t, nil), d.dial(t, nil)
	for _, ws := range []*websocket.Conn{ws1, ws2} {
		resp, _ := call(t, ctx, ws, `{"id":1,"src":"cli","method":"Ws.GetStatus"}`)
		require.JSONEq(t, `{"connected":true}`, string(resp.Result))
	}

	d.c.Reboot()
	for i, ws := range []*websocket.Conn{ws1, ws2} {
		_, _, err := ws.Read(ctx)
		require.Error(t, err, "client %d", i)
		assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(err), "client %d dropped, not closed: %v", i, err)
	}
	awaitChan(t, conn.Done(), "the outbound connection to drop")
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(conn.Err()), "dropped, not closed: %v", conn.Err())
	awaitChan(t, rebooted, "WithOnReboot")

	r := d.get(t, "/rpc/Ws.GetStatus", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"code":-114,"message":"Rebooting"}`, r.body)
	_, resp, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
	require.Error(t, err, "no websocket client while down")
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	openGate()
	acceptConnected(t, ctx, srv)
	r = d.get(t, "/rpc/Ws.GetStatus", "")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	ws3 := d.dial(t, nil)
	resp3, _ := call(t, ctx, ws3, `{"id":2,"src":"cli","method":"Shelly.GetDeviceInfo"}`)
	assert.Nil(t, resp3.Error)
}

// Notifications queued before a reboot are lost with the device's RAM: the
// first connection after it sends a fresh NotifyFullStatus and then only
// what was published since.
func TestRebootDoesNotReplayQueuedNotifications(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithBootTime(0))
	ctx := testCtx(t)
	acceptConnected(t, ctx, srv)
	srv.Stop()
	require.Eventually(t, func() bool { return dev.State() != shellyws.StateConnected }, waitTimeout, time.Millisecond)
	require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]int{"seq": 1}}))
	require.Equal(t, 1, dev.Stats().Queued)

	dev.Reboot()
	require.NoError(t, srv.Restart(ctx))
	conn := acceptConnected(t, ctx, srv)
	require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]int{"seq": 2}}))
	delta, err := conn.ExpectStatus(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"seq":2}`, string(delta.Changes["switch:0"]), "the notification from before the reboot was replayed")
}

// Shelly.Reboot as a device implements it: answer null, then reboot from
// AfterReply. The answer arrives, the connection drops without a close
// frame, the callbacks run in order and the device comes back with a fresh
// NotifyFullStatus.
func TestShellyRebootFromAfterReply(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	var dev *shellyws.Component
	mux.HandleFunc("Shelly.Reboot", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		if !shellyws.AfterReply(ctx, dev.Reboot) {
			return nil, shellyws.Errorf(shellyws.CodeInternal, "not a request context")
		}
		return nil, nil
	})
	var mu sync.Mutex
	var events []string
	record := func(e string) func() {
		return func() { mu.Lock(); events = append(events, e); mu.Unlock() }
	}
	dev = startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux),
		shellyws.WithBootTime(time.Millisecond),
		shellyws.WithOnReboot(record("reboot")), shellyws.WithOnBoot(record("boot")))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)
	var res json.RawMessage
	require.NoError(t, conn.Call(ctx, "Shelly.Reboot", map[string]int{"delay_ms": 0}, &res))
	assert.Equal(t, "null", string(res))
	awaitChan(t, conn.Done(), "the reboot to drop the connection")
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(conn.Err()))
	acceptConnected(t, ctx, srv)
	mu.Lock()
	assert.Equal(t, []string{"reboot", "boot"}, events)
	mu.Unlock()
	var ce *shellyws.ConnError
	require.ErrorAs(t, dev.LastError(), &ce)
	assert.ErrorIs(t, ce, shellyws.ErrRebooted)
}
