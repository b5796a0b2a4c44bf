package shellyws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestFullStatusFirstOnEveryConnectThenQueuedDeltasInOrder(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(srv.URL()))
	ctx := testCtx(t)

	for round := range 3 {
		conn, err := srv.Accept(ctx)
		require.NoError(t, err)
		full, err := conn.ExpectFullStatus(ctx)
		require.NoError(t, err, "round %d", round)
		assert.Equal(t, testDeviceID, full.Src)
		assert.Equal(t, "ws", full.Dst)
		assert.JSONEq(t, `{"connected":true}`, string(full.Status["ws"]))
		assert.JSONEq(t, `{"mac":"C049EF8CF4E0"}`, string(full.Status["sys"]))
		require.NoError(t, dev.AwaitConnected(ctx))

		// Deltas queued while the server is away follow the next full status in order.
		srv.Stop()
		_, err = dev.WaitForStateChange(ctx, shellyws.StateConnected)
		require.NoError(t, err)
		for i := range 3 {
			require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"n": round*10 + i}}))
		}
		require.NoError(t, srv.Restart(ctx))
		conn, err = srv.Accept(ctx)
		require.NoError(t, err)
		_, err = conn.ExpectFullStatus(ctx)
		require.NoError(t, err)
		for i := range 3 {
			delta, err := conn.ExpectStatus(ctx)
			require.NoError(t, err)
			assert.JSONEq(t, fmt.Sprintf(`{"n":%d}`, round*10+i), string(delta.Changes["switch:0"]))
		}
		srv.CloseConns(websocket.StatusGoingAway, "next round")
	}
}

func TestNotificationsShape(t *testing.T) {
	srv := shellywstest.NewServer(t)
	clock := time.Date(2024, 2, 19, 22, 31, 23, 450_000_000, time.UTC)
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithClock(func() time.Time { return clock }))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"id": 0, "output": true}, "script:1": nil}))
	f, err := conn.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t,
		`{"src":"shellyplus1pm-c049ef8cf4e0","dst":"ws","method":"NotifyStatus","params":{"ts":1708381883.45,"script:1":null,"switch:0":{"id":0,"output":true}}}`,
		string(f.Raw))

	zero := 0
	require.NoError(t, dev.NotifyEvent(
		shellyws.Event{Component: "input:0", ID: &zero, Event: "single_push"},
		shellyws.Event{Component: "sys", Event: "config_changed", Fields: map[string]any{"cfg_rev": 8, "restart_required": true}},
	))
	f, err = conn.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, "NotifyEvent", f.Method)
	assert.Nil(t, f.ID, "notifications never carry an id")
	assert.JSONEq(t, `{"ts":1708381883.45,"events":[
		{"component":"input:0","id":0,"event":"single_push","ts":1708381883.45},
		{"component":"sys","event":"config_changed","cfg_rev":8,"restart_required":true,"ts":1708381883.45}]}`,
		string(f.Params))
}

func TestReconnectsAfterEveryCloseCode(t *testing.T) {
	codes := []websocket.StatusCode{1000, 1001, 1008, 1011, 1013, 4001, 4002, 4003, 4100, 4101}
	srv := shellywstest.NewServer(t)
	var disconnects []error
	var mu sync.Mutex
	rb := newRecordingBackoff(time.Millisecond, 20*time.Millisecond)
	sb := &serverBackoffRecorder{}
	dev := startDevice(t, enabledConfig(srv.URL()), rb.option(), sb.option(),
		shellyws.WithOnDisconnect(func(err error) { mu.Lock(); disconnects = append(disconnects, err); mu.Unlock() }))
	ctx := testCtx(t)
	for _, code := range codes {
		conn, err := srv.Accept(ctx)
		require.NoError(t, err)
		_, err = conn.ExpectFullStatus(ctx)
		require.NoError(t, err)
		require.NoError(t, conn.Close(code, "bye"))
	}
	conn, err := srv.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	require.NoError(t, dev.AwaitConnected(ctx))

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(disconnects) == len(codes) }, waitTimeout, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i, err := range disconnects {
		var ce *shellyws.ConnError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, codes[i], ce.CloseCode, "disconnect %d", i)
	}
	st := dev.Stats()
	assert.EqualValues(t, len(codes)+1, st.Connects)
	assert.EqualValues(t, len(codes), st.Disconnects)
	delays, resets := rb.snapshot()
	assert.Len(t, delays, len(codes)-2, "one backoff delay per lost connection but for 1008 and 1013")
	assert.Len(t, sb.snapshot(), 2, "1008 and 1013 ask for the server's back-off")
	assert.Equal(t, 1, resets, "short-lived connections must not reset the backoff")
}

// assertGrowingJitteredDelays checks the no-tight-loop contract: delays grow
// with each failure (never reset by a failed attempt) and are randomized.
func assertGrowingJitteredDelays(t *testing.T, rb *recordingBackoff, initial time.Duration) {
	t.Helper()
	delays, resets := rb.snapshot()
	require.GreaterOrEqual(t, len(delays), 5)
	assert.Equal(t, 1, resets, "one run of waits from attempt 1: failures never reset the backoff")
	// With factor 0.5, the n-th delay lies in [0.5, 1.5] * initial * 2^n.
	jittered := false
	for n, d := range delays[:5] {
		base := initial << n
		assert.GreaterOrEqual(t, d, base/2, "delay %d", n)
		assert.LessOrEqual(t, d, base*3/2, "delay %d", n)
		if d != base {
			jittered = true
		}
	}
	assert.True(t, jittered, "delays are randomized")
	assert.Greater(t, delays[4], delays[0])
}

func TestRefusedHandshakeBacksOffWithGrowingJitteredDelays(t *testing.T) {
	srv := shellywstest.NewServer(t)
	// 500, not 503 or 429: those ask for the server's longer back-off.
	srv.RejectNext(6, http.StatusInternalServerError)
	rb := newRecordingBackoff(2*time.Millisecond, time.Second)
	dev := startDevice(t, enabledConfig(srv.URL()), rb.option())
	acceptConnected(t, testCtx(t), srv)
	assert.Equal(t, 7, srv.Handshakes())
	assert.EqualValues(t, 6, dev.Stats().DialFailures)
	assertGrowingJitteredDelays(t, rb, 2*time.Millisecond)
}

func TestDialErrorCarriesHTTPStatus(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv.RejectNext(1000, http.StatusForbidden)
	dev := startDevice(t, enabledConfig(srv.URL()))
	ctx := testCtx(t)
	require.Eventually(t, func() bool { return dev.LastError() != nil }, waitTimeout, time.Millisecond)
	var ce *shellyws.ConnError
	require.ErrorAs(t, dev.LastError(), &ce)
	assert.Equal(t, "dial", ce.Op)
	assert.Equal(t, http.StatusForbidden, ce.HTTPStatus)
	assert.Equal(t, shellyws.StateConnecting.String(), "connecting")
	assert.False(t, dev.GetStatus().Connected)
	_ = ctx
}

func TestAcceptAndDropAtOnceDoesNotLoopTightly(t *testing.T) {
	var accepted atomic.Int32
	url := rawWebsocketServer(t, func(*websocket.Conn, *http.Request) { accepted.Add(1) })
	rb := newRecordingBackoff(2*time.Millisecond, time.Second)
	startDevice(t, enabledConfig(url), rb.option())
	require.Eventually(t, func() bool { d, _ := rb.snapshot(); return len(d) >= 6 }, waitTimeout, time.Millisecond)
	assertGrowingJitteredDelays(t, rb, 2*time.Millisecond)
	assert.GreaterOrEqual(t, accepted.Load(), int32(5))
}

func TestDeadPeerIsDetectedByPingAndRedialled(t *testing.T) {
	// A server that completes the handshake and then never reads: it never
	// answers pings, like the far end of a half-open TCP connection.
	var accepted atomic.Int32
	release := make(chan struct{})
	url := rawWebsocketServer(t, func(*websocket.Conn, *http.Request) {
		accepted.Add(1)
		<-release
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup
	var mu sync.Mutex
	var causes []error
	startDevice(t, enabledConfig(url),
		shellyws.WithPing(5*time.Millisecond, 20*time.Millisecond),
		shellyws.WithOnDisconnect(func(err error) { mu.Lock(); causes = append(causes, err); mu.Unlock() }))
	require.Eventually(t, func() bool { return accepted.Load() >= 3 }, waitTimeout, time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(causes) >= 2 }, waitTimeout, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, err := range causes[:2] {
		var ce *shellyws.ConnError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "ping", ce.Op)
	}
}

func TestPipelinedRequestsWhileNotificationsFlow(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	mux.HandleFunc("Echo.Id", func(_ context.Context, req *shellyws.Request) (any, error) {
		return json.RawMessage(req.ID), nil
	})
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux), shellyws.WithQueueSize(1000))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	const n = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			_ = dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"seq": i}})
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf(`"req-%d"`, i)
			resp, err := conn.CallRaw(ctx, []byte(`{"id":`+id+`,"src":"pipe","method":"echo.id"}`))
			if err != nil {
				errs <- err
				return
			}
			var f struct {
				ID     json.RawMessage `json:"id"`
				Dst    string          `json:"dst"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(resp, &f); err != nil {
				errs <- err
				return
			}
			if string(f.ID) != id || string(f.Result) != id || f.Dst != "pipe" {
				errs <- fmt.Errorf("request %s answered with %s", id, resp)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	<-done
	for i := range n {
		delta, err := conn.ExpectStatus(ctx)
		require.NoError(t, err)
		require.JSONEq(t, fmt.Sprintf(`{"seq":%d}`, i), string(delta.Changes["switch:0"]))
	}
}

func TestRestartAfterSetConfigMovesToNewServer(t *testing.T) {
	oldSrv := shellywstest.NewServer(t)
	newSrv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
	dev := startDevice(t, enabledConfig(oldSrv.URL()))
	ctx := testCtx(t)
	conn, err := oldSrv.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)

	var res struct {
		RestartRequired bool `json:"restart_required"`
	}
	require.NoError(t, conn.Call(ctx, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": newSrv.URL() + "?token=s3cret"}}, &res))
	assert.True(t, res.RestartRequired)
	var cfg shellyws.Config
	require.NoError(t, conn.Call(ctx, "ws.getconfig", nil, &cfg))
	assert.Equal(t, newSrv.URL()+"?token=s3cret", *cfg.Server, "GetConfig shows the stored config at once")
	// Still on the old server until the restart.
	require.NoError(t, conn.Call(ctx, "Ws.GetStatus", nil, nil))

	dev.Restart()
	select {
	case <-conn.Done():
	case <-ctx.Done():
		t.Fatal("old connection not closed by restart")
	}
	assert.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(conn.Err()))
	conn, err = newSrv.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	assert.Equal(t, "/shelly?token=s3cret", conn.RequestURI(), "path and query are used verbatim")
	assert.Equal(t, "json-rpc", conn.Subprotocol())

	// enable:false disconnects and stays quiet.
	require.NoError(t, conn.Call(ctx, "Ws.SetConfig", map[string]any{"config": map[string]any{"enable": false}}, nil))
	dev.Restart()
	<-conn.Done()
	require.Eventually(t, func() bool { return dev.State() == shellyws.StateDisconnected }, waitTimeout, time.Millisecond)
	handshakes := newSrv.Handshakes()
	shortCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = newSrv.Accept(shortCtx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a disabled device dials nothing")
	assert.Equal(t, handshakes, newSrv.Handshakes())
	assert.False(t, dev.GetStatus().Connected)
}

func TestQueueHoldsItsBoundWhileServerIsAway(t *testing.T) {
	srv := shellywstest.NewServer(t)
	srv.Stop()
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithQueueSize(5))
	for i := range 12 {
		require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"seq": i}}))
	}
	st := dev.Stats()
	assert.Equal(t, 5, st.Queued)
	assert.EqualValues(t, 7, st.Dropped)

	ctx := testCtx(t)
	require.NoError(t, srv.Restart(ctx))
	conn, err := srv.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	for i := 7; i < 12; i++ {
		delta, err := conn.ExpectStatus(ctx)
		require.NoError(t, err)
		assert.JSONEq(t, fmt.Sprintf(`{"seq":%d}`, i), string(delta.Changes["switch:0"]), "the oldest were dropped")
	}
	require.Eventually(t, func() bool { return dev.Stats().Queued == 0 }, waitTimeout, time.Millisecond)
}

func TestNoGoroutineLeftAfterManyConnectDropCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 cycles")
	}
	srv := shellywstest.NewServer(t)
	before := runtime.NumGoroutine()
	// Every connection counts as healthy, so each redial waits only the
	// initial millisecond.
	c, err := shellyws.New(testDeviceID, append(fastOptions(), shellyws.WithHealthyAfter(0),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))))...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx := testCtx(t)
	for i := range 1000 {
		conn, err := srv.Accept(wctx)
		require.NoError(t, err, "cycle %d, state %v, last error %v, stats %+v", i, c.State(), c.LastError(), c.Stats())
		_, err = conn.ExpectFullStatus(wctx)
		require.NoError(t, err, "state %v, last error %v, stats %+v", c.State(), c.LastError(), c.Stats())
		conn.Close(websocket.StatusTryAgainLater, "again")
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, shellyws.StateClosed, c.State())
	assert.ErrorIs(t, c.AwaitConnected(wctx), shellyws.ErrClosed)
	assert.ErrorIs(t, c.Run(wctx), shellyws.ErrAlreadyRunning)
	srv.Close()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before }, waitTimeout, time.Millisecond,
		"goroutines: before %d, now %d", before, runtime.NumGoroutine())
}

func TestRunReturnsPromptlyWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  shellyws.Config
	}{
		{"disabled", shellyws.DefaultConfig()},
		{"enabled without server", shellyws.Config{Enable: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := shellyws.New(testDeviceID, shellyws.WithConfigStore(shellyws.NewMemoryStore(tc.cfg)))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			st, err := c.WaitForStateChange(testCtx(t), shellyws.StateConnecting)
			require.NoError(t, err)
			assert.Equal(t, shellyws.StateDisconnected, st)
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return")
			}
		})
	}
}

var _ = errors.New

func TestSlowHandlerDoesNotHoldUpOtherRequests(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	release := make(chan struct{})
	var blocked atomic.Int32
	mux.HandleFunc("Slow.Wait", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		blocked.Add(1)
		select {
		case <-release:
			return "released", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	mux.HandleFunc("Fast.Echo", func(_ context.Context, req *shellyws.Request) (any, error) {
		return json.RawMessage(req.ID), nil
	})
	startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux), shellyws.WithMaxInFlight(3))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	// Two handlers block; requests sent after them are still answered.
	slow := make(chan error, 2)
	for range 2 {
		go func() {
			var res string
			err := conn.Call(ctx, "Slow.Wait", nil, &res)
			if err == nil && res != "released" {
				err = fmt.Errorf("got %q", res)
			}
			slow <- err
		}()
	}
	require.Eventually(t, func() bool { return blocked.Load() == 2 }, waitTimeout, time.Millisecond)
	for i := range 20 {
		resp, err := conn.CallRaw(ctx, []byte(fmt.Sprintf(`{"id":%d,"method":"Fast.Echo"}`, 1000+i)))
		require.NoError(t, err)
		assert.Contains(t, string(resp), fmt.Sprintf(`"result":%d`, 1000+i))
	}

	// With every slot taken the device stops reading: the next request waits
	// for a slot, and is answered once one frees.
	third := make(chan error, 1)
	go func() {
		var res string
		third <- conn.Call(ctx, "Slow.Wait", nil, &res)
	}()
	require.Eventually(t, func() bool { return blocked.Load() == 3 }, waitTimeout, time.Millisecond)
	waiting := make(chan error, 1)
	go func() {
		_, err := conn.CallRaw(ctx, []byte(`{"id":"late","method":"Fast.Echo"}`))
		waiting <- err
	}()
	select {
	case err := <-waiting:
		t.Fatalf("answered with all %d slots taken: %v", 3, err)
	case <-time.After(50 * time.Millisecond): // a bounded look for a wrong early answer
	}
	close(release)
	require.NoError(t, <-waiting)
	for range 2 {
		require.NoError(t, <-slow)
	}
	require.NoError(t, <-third)
}

// TestIdleConnectionOutlivesTheWriteTimeout: after a frame is written, the
// write deadline must not linger on the socket, or the device's own pings,
// its pongs to the server's pings and its close replies would fail once the
// connection has been idle for longer than the write timeout.
func TestIdleConnectionOutlivesTheWriteTimeout(t *testing.T) {
	const writeTimeout = 30 * time.Millisecond
	serverPings := make(chan error, 1)
	url := rawWebsocketServer(t, func(c *websocket.Conn, r *http.Request) {
		if _, _, err := c.Read(r.Context()); err != nil { // NotifyFullStatus
			return
		}
		ctx := c.CloseRead(r.Context()) // reads on, so pongs are handled
		// Idle for well past the device's write timeout, then ping it.
		select {
		case <-time.After(10 * writeTimeout):
		case <-ctx.Done():
			return
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		serverPings <- c.Ping(pctx)
		<-ctx.Done()
	})
	dev := startDevice(t, enabledConfig(url),
		shellyws.WithWriteTimeout(writeTimeout),
		shellyws.WithPing(2*writeTimeout, time.Second))
	require.NoError(t, dev.AwaitConnected(testCtx(t)))
	select {
	case err := <-serverPings:
		require.NoError(t, err, "the device answers the server's ping after idling; device: %v", dev.LastError())
	case <-time.After(waitTimeout):
		t.Fatal("the server never pinged")
	}
	// Meanwhile the device pinged several times; none of that dropped it.
	assert.EqualValues(t, 0, dev.Stats().Disconnects, "last error: %v", dev.LastError())
	assert.Equal(t, shellyws.StateConnected, dev.State())
}

// TestBusyDeviceKeepsItsConnection: while every in-flight slot is taken the
// device reads nothing, pongs included, so its keepalive must wait rather
// than drop a connection that is only busy.
func TestBusyDeviceKeepsItsConnection(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	mux.HandleFunc("Slow.Wait", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux),
		shellyws.WithMaxInFlight(1), shellyws.WithPing(5*time.Millisecond, 20*time.Millisecond))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	answers := make(chan error, 2)
	for range 2 {
		go func() { answers <- conn.Call(ctx, "Slow.Wait", nil, nil) }()
	}
	<-started
	// The second request waits for the slot; many ping intervals and
	// timeouts pass while the device cannot read.
	require.Never(t, func() bool { return dev.Stats().Disconnects > 0 }, 200*time.Millisecond, 5*time.Millisecond,
		"dropped while busy: %v", dev.LastError())
	close(release)
	for range 2 {
		require.NoError(t, <-answers)
	}
	assert.EqualValues(t, 0, dev.Stats().Disconnects)
}
