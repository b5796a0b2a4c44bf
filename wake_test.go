package shellyws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
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

type wakeOutcome struct {
	res shellyws.WakeResult
	err error
}

// newSleeper makes a sleeping device with cfg stored and a Mux holding the
// Ws methods, a Shelly.Reboot that holds the wake until it fires, and a
// Test.Slow that answers after its params' ms.
func newSleeper(t testing.TB, cfg shellyws.Config, opts ...shellyws.Option) *shellyws.Component {
	t.Helper()
	mux := shellyws.NewMux()
	all := append([]shellyws.Option{
		shellyws.WithDispatcher(mux),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)),
	}, opts...)
	c, err := shellyws.New("shellyplusht-e86beae8ca14", all...)
	require.NoError(t, err)
	c.Register(mux)
	var timers sync.WaitGroup
	t.Cleanup(timers.Wait)
	mux.HandleFunc("Shelly.Reboot", func(_ context.Context, req *shellyws.Request) (any, error) {
		p := struct {
			DelayMS int `json:"delay_ms"`
		}{1000}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		release := c.HoldAwake()
		timers.Add(1)
		time.AfterFunc(time.Duration(p.DelayMS)*time.Millisecond, func() {
			defer timers.Done()
			c.InterruptWake()
			release()
		})
		return nil, nil
	})
	mux.HandleFunc("Test.Slow", func(ctx context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			MS int `json:"ms"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		t := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	return c
}

// startWake runs one Wake on its own goroutine; cleanup waits for it.
func startWake(t testing.TB, c *shellyws.Component) <-chan wakeOutcome {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan wakeOutcome, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := c.Wake(ctx)
		out <- wakeOutcome{res, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Wake did not return after its context ended")
		}
	})
	return out
}

func awaitWake(t testing.TB, out <-chan wakeOutcome) shellyws.WakeResult {
	t.Helper()
	select {
	case o := <-out:
		require.NoError(t, o.err)
		return o.res
	case <-time.After(waitTimeout):
		t.Fatal("Wake did not return")
	}
	return shellyws.WakeResult{}
}

// serveInbound serves c's inbound channels on loopback and returns the
// http:// base URL.
func serveInbound(t testing.TB, c *shellyws.Component) string {
	t.Helper()
	h := shellyws.NewHandler(c)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv.URL
}

// httpGet calls GET base+path and returns the status and body.
func httpGet(t testing.TB, base, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, base+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// wsClient is an inbound websocket client, as Home Assistant opens one to
// a device's /rpc.
type wsClient struct {
	conn   *websocket.Conn
	nextID int
}

func dialInbound(t testing.TB, base string) *wsClient {
	t.Helper()
	conn, _, err := websocket.Dial(testCtx(t), "ws"+strings.TrimPrefix(base, "http")+"/rpc", nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{conn: conn}
}

// call sends a request with src and returns the response's result or error.
func (w *wsClient) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	w.nextID++
	req, err := json.Marshal(map[string]any{"id": w.nextID, "src": "ha-client", "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := w.conn.Write(ctx, websocket.MessageText, req); err != nil {
		return nil, err
	}
	for {
		_, data, err := w.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		var resp struct {
			ID     int              `json:"id"`
			Result json.RawMessage  `json:"result"`
			Error  *shellyws.Error  `json:"error"`
			Method *json.RawMessage `json:"method"`
		}
		if err := json.Unmarshal(data, &resp); err != nil {
			return nil, err
		}
		if resp.Method != nil || resp.ID != w.nextID {
			continue // a notification
		}
		if resp.Error != nil {
			return nil, resp.Error
		}
		return resp.Result, nil
	}
}

// closeCode waits for the server to close the client and returns the code.
func (w *wsClient) closeCode(ctx context.Context) websocket.StatusCode {
	for {
		if _, _, err := w.conn.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func expectSleepEvent(t testing.TB, conn *shellywstest.Conn) {
	t.Helper()
	ev := conn.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	e := ev.Events[0]
	assert.Equal(t, "sys", e.Component)
	assert.Equal(t, "sleep", e.Event)
	assert.Nil(t, e.ID, "sys is a singleton: no id")
	assert.Positive(t, e.TS)
	assert.Equal(t, "ws", ev.Dst)
	assert.Contains(t, string(ev.Params), `"events":[{"component":"sys","event":"sleep","ts":`)
}

func closedWith(t testing.TB, conn *shellywstest.Conn) websocket.StatusCode {
	t.Helper()
	select {
	case <-conn.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the device did not close its connection")
	}
	return websocket.CloseStatus(conn.Err())
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// pause lets d of wall time pass: a stimulus (time without requests), not
// a synchronisation.
func pause(d time.Duration) { <-time.After(d) }

func TestWakeCycleFrames(t *testing.T) {
	srv := shellywstest.NewServer(t)
	var mu sync.Mutex
	var disconnects []error
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(20*time.Millisecond),
		shellyws.WithOnDisconnect(func(err error) { mu.Lock(); disconnects = append(disconnects, err); mu.Unlock() }))
	require.NoError(t, c.NotifyStatus(map[string]any{"temperature:0": map[string]any{"id": 0, "tC": 22.4}}))

	out := startWake(t, c)
	conn := srv.AcceptT(t)
	fs := conn.ExpectFullStatusT(t)
	assert.JSONEq(t, `{"connected":true}`, string(fs.Status["ws"]))
	delta := conn.ExpectStatusT(t)
	assert.JSONEq(t, `{"id":0,"tC":22.4}`, string(delta.Changes["temperature:0"]))
	expectSleepEvent(t, conn)
	assert.Equal(t, websocket.StatusNormalClosure, closedWith(t, conn))

	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeIdle, res.End)
	assert.Equal(t, 1, res.Dials)
	assert.True(t, res.Connected)
	assert.True(t, res.SleepSent)
	assert.NoError(t, res.Err)
	assert.Equal(t, shellyws.StateAsleep, c.State())
	assert.Equal(t, "asleep", c.State().String())
	assert.NoError(t, c.LastError(), "a sleep is not a failure")
	st := c.Stats()
	assert.Equal(t, uint64(1), st.Wakes)
	assert.Equal(t, uint64(1), st.Sleeps)
	assert.Equal(t, uint64(1), st.Connects)
	assert.Equal(t, uint64(1), st.Disconnects)
	assert.Zero(t, st.Queued)
	mu.Lock()
	require.Len(t, disconnects, 1, "callbacks have run when Wake returns")
	assert.ErrorIs(t, disconnects[0], shellyws.ErrAsleep)
	var cerr *shellyws.ConnError
	require.ErrorAs(t, disconnects[0], &cerr)
	assert.Equal(t, "sleep", cerr.Op)
	mu.Unlock()

	// Asleep: nothing is dialled, however long it sleeps.
	pause(200 * time.Millisecond)
	assert.Equal(t, 1, srv.Handshakes())

	// The next wake dials at once; nothing of the last wake is replayed.
	out = startWake(t, c)
	conn = srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	expectSleepEvent(t, conn)
	assert.Equal(t, websocket.StatusNormalClosure, closedWith(t, conn))
	awaitWake(t, out)
	assert.Equal(t, 2, srv.Handshakes())
	assert.Equal(t, uint64(2), c.Stats().Sleeps)
}

func TestWakeOutboundRequestsKeepItAwake(t *testing.T) {
	const idle = 300 * time.Millisecond
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(idle))
	release := c.HoldAwake() // until the first request, however slow the machine
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)

	// Requests closer together than the idle time, for twice the idle time:
	// a sleep in between would close the connection and fail a call.
	tick := time.NewTicker(idle / 6)
	defer tick.Stop()
	for i := range 12 {
		<-tick.C
		var st shellyws.Status
		conn.CallT(t, "Ws.GetStatus", nil, &st)
		assert.True(t, st.Connected)
		if i == 0 {
			release()
		}
	}
	// A request in flight for longer than the idle time keeps it awake too.
	var got string
	conn.CallT(t, "Test.Slow", map[string]int{"ms": int(2 * idle / time.Millisecond)}, &got)
	assert.Equal(t, "done", got)

	expectSleepEvent(t, conn)
	assert.Equal(t, websocket.StatusNormalClosure, closedWith(t, conn))
	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeIdle, res.End)
	assert.Equal(t, uint64(13), res.Requests)
	assert.GreaterOrEqual(t, res.Awake, 4*idle, "12 requests idle/6 apart and a request of 2 idle")
}

func TestWakeInboundRequestsKeepItAwake(t *testing.T) {
	const idle = 300 * time.Millisecond
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(idle))
	base := serveInbound(t, c)
	release := c.HoldAwake() // until the first request, however slow the machine
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)

	tick := time.NewTicker(idle / 6)
	defer tick.Stop()
	for i := range 12 {
		<-tick.C
		code, body := httpGet(t, base, "/rpc/Ws.GetStatus")
		assert.Equal(t, http.StatusOK, code)
		assert.JSONEq(t, `{"connected":true}`, body)
		if i == 0 {
			release()
		}
	}
	// The inbound websocket counts alike, a long request included.
	ws := dialInbound(t, base)
	res, err := ws.call(testCtx(t), "Test.Slow", map[string]int{"ms": int(2 * idle / time.Millisecond)})
	require.NoError(t, err)
	assert.JSONEq(t, `"done"`, string(res))
	select {
	case <-conn.Done():
		t.Fatal("the device slept while the inbound channel was busy")
	default:
	}

	expectSleepEvent(t, conn)
	assert.Equal(t, websocket.StatusNormalClosure, closedWith(t, conn))
	assert.Equal(t, websocket.StatusNormalClosure, ws.closeCode(testCtx(t)), "inbound clients end with the wake")
	r := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeIdle, r.End)
	assert.Equal(t, uint64(13), r.Requests)

	// Asleep: the inbound channels answer nothing.
	code, body := httpGet(t, base, "/rpc/Ws.GetStatus")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, `{"code":-114,"message":"Asleep"}`, body)
}

func TestWakeCapEndsABusyWake(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(200*time.Millisecond), shellyws.WithAwakeMax(400*time.Millisecond))
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	calls := 0
	for {
		if err := conn.Call(testCtx(t), "Ws.GetStatus", nil, nil); err != nil {
			require.ErrorIs(t, err, shellywstest.ErrConnClosed)
			break
		}
		calls++
	}
	expectSleepEvent(t, conn)
	assert.Equal(t, websocket.StatusNormalClosure, closedWith(t, conn))
	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeCapped, res.End)
	assert.True(t, res.SleepSent)
	assert.Positive(t, calls)
	assert.Equal(t, uint64(1), c.Stats().Sleeps, "a capped wake ends in sleep too")
}

func TestWakeCapEndsAHeldWake(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(10*time.Millisecond), shellyws.WithAwakeMax(200*time.Millisecond))
	release := c.HoldAwake() // taken while asleep: holds the next wake
	defer release()
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	expectSleepEvent(t, conn)
	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeCapped, res.End)
}

func TestWakeFailedDialRetriedOnceThenIdleWithInboundAnswering(t *testing.T) {
	const idle = 500 * time.Millisecond
	wrong := shellywstest.NewServer(t)
	wrong.RejectNext(100, http.StatusNotFound) // a wrong path
	right := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(wrong.URL()), shellyws.WithAwakeIdle(idle))
	base := serveInbound(t, c)

	out := startWake(t, c)
	waitFor(t, "two handshakes", func() bool { return wrong.Handshakes() == 2 })
	code, body := httpGet(t, base, "/rpc/Ws.GetStatus")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"connected":false}`, body)
	// Re-pointed while awake, as a user fixing a wrong server does.
	code, body = httpGet(t, base, "/rpc/Ws.SetConfig?config="+
		fmt.Sprintf(`{"server":%q}`, right.URL()))
	assert.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"restart_required":true}`, body)

	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeIdle, res.End)
	assert.Equal(t, 2, res.Dials)
	assert.False(t, res.Connected)
	assert.False(t, res.SleepSent)
	var cerr *shellyws.ConnError
	require.ErrorAs(t, res.Err, &cerr)
	assert.Equal(t, http.StatusNotFound, cerr.HTTPStatus)
	assert.Equal(t, 2, wrong.Handshakes(), "one attempt and one retry, no back-off loop")
	assert.Equal(t, uint64(2), c.Stats().DialFailures)
	assert.ErrorAs(t, c.LastError(), &cerr, "the failed dial stays the last error across the sleep")
	assert.Equal(t, uint64(1), c.Stats().Sleeps)

	out = startWake(t, c)
	conn := right.AcceptT(t)
	conn.ExpectFullStatusT(t)
	expectSleepEvent(t, conn)
	awaitWake(t, out)
	assert.Equal(t, 2, wrong.Handshakes())
}

func TestWakeSetConfigUsedAtNextWake(t *testing.T) {
	first := shellywstest.NewServer(t)
	second := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(first.URL()), shellyws.WithAwakeIdle(20*time.Millisecond))

	release := c.HoldAwake() // however slow the machine, the call comes first
	out := startWake(t, c)
	conn := first.AcceptT(t)
	conn.ExpectFullStatusT(t)
	var res struct {
		RestartRequired bool `json:"restart_required"`
	}
	conn.CallT(t, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": second.URL()}}, &res)
	assert.True(t, res.RestartRequired)
	release()
	expectSleepEvent(t, conn)
	awaitWake(t, out)

	out = startWake(t, c)
	conn = second.AcceptT(t)
	conn.ExpectFullStatusT(t)
	expectSleepEvent(t, conn)
	awaitWake(t, out)
	assert.Equal(t, 1, first.Handshakes())
}

func TestWakeHeldByAPendingReboot(t *testing.T) {
	srv := shellywstest.NewServer(t)
	var mu sync.Mutex
	var disconnects []error
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(20*time.Millisecond),
		shellyws.WithOnDisconnect(func(err error) { mu.Lock(); disconnects = append(disconnects, err); mu.Unlock() }))
	release := c.HoldAwake() // until the call is answered, however slow the machine
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	// 300 ms is fifteen idle times: without the reboot's hold the wake
	// would end WakeIdle, with the sleep event.
	conn.CallT(t, "Shelly.Reboot", map[string]int{"delay_ms": 300}, nil)
	release()
	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeInterrupted, res.End)
	assert.False(t, res.SleepSent)
	assert.Equal(t, websocket.StatusCode(-1), closedWith(t, conn), "a reboot drops the connection: no close frame")
	_, err := conn.Next(testCtx(t))
	assert.ErrorIs(t, err, shellywstest.ErrConnClosed, "no sleep event before a reboot")
	assert.Zero(t, c.Stats().Sleeps)
	mu.Lock()
	require.Len(t, disconnects, 1)
	assert.ErrorIs(t, disconnects[0], shellyws.ErrRebooted)
	mu.Unlock()

	// After the boot the device dials at once.
	out = startWake(t, c)
	conn = srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	expectSleepEvent(t, conn)
	assert.Equal(t, shellyws.WakeIdle, awaitWake(t, out).End)
}

// Home Assistant's set-up of a sleeping device, as far as the library goes:
// a device that is awake but pointed nowhere is set up over its inbound
// websocket and reaches the server at its next wake.
func TestWakeHomeAssistantSetUp(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, shellyws.DefaultConfig(), shellyws.WithAwakeIdle(100*time.Millisecond))
	base := serveInbound(t, c)
	release := c.HoldAwake() // until Home Assistant is done, however slow the machine
	out := startWake(t, c)
	waitFor(t, "the device awake", func() bool { return c.State() != shellyws.StateAsleep })

	ctx := testCtx(t)
	ha := dialInbound(t, base)
	cfg, err := ha.call(ctx, "Ws.GetConfig", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`, string(cfg))
	res, err := ha.call(ctx, "Ws.SetConfig", map[string]any{"config": map[string]any{
		"enable": true, "server": srv.URL(), "ssl_ca": "*"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"restart_required":true}`, string(res))
	res, err = ha.call(ctx, "Shelly.Reboot", map[string]int{"delay_ms": 400})
	require.NoError(t, err)
	assert.JSONEq(t, `null`, string(res))
	release()

	r := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeInterrupted, r.End, "awake until the reboot fired")
	assert.Zero(t, r.Dials)
	assert.Zero(t, srv.Handshakes())
	assert.Equal(t, websocket.StatusCode(-1), ha.closeCode(ctx), "the reboot drops the inbound client too")

	out = startWake(t, c)
	conn := srv.AcceptT(t)
	fs := conn.ExpectFullStatusT(t)
	assert.Equal(t, "shellyplusht-e86beae8ca14", fs.Src)
	expectSleepEvent(t, conn)
	awaitWake(t, out)
}

func TestWakeBootClock(t *testing.T) {
	srv := shellywstest.NewServer(t)
	real := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c := newSleeper(t, enabledConfig(srv.URL()),
		shellyws.WithAwakeIdle(20*time.Millisecond),
		shellyws.WithBootClock(),
		shellyws.WithClock(func() time.Time { return real }))
	assert.False(t, c.ClockSet())

	for wake := range 2 {
		release := c.HoldAwake() // the clock is set before the sleep event
		out := startWake(t, c)
		conn := srv.AcceptT(t)
		fs := conn.ExpectFullStatusT(t)
		assert.Less(t, fs.TS, 5.0, "wake %d: ts counts seconds since boot", wake)
		assert.Regexp(t, `^\{"ts":\d+\.\d\d,`, string(fs.Params))
		assert.False(t, c.ClockSet())
		assert.Less(t, c.SinceBoot(), 5*time.Second, "every wake is a boot")
		if wake == 0 {
			c.SetClockSynced()
			assert.True(t, c.ClockSet())
		}
		release()
		ev := conn.ExpectEventT(t)
		if wake == 0 {
			assert.InDelta(t, float64(real.Unix()), ev.TS, 0.001, "the real clock once it is set")
		} else {
			assert.Less(t, ev.TS, 5.0, "the clock is unset again at the next wake")
		}
		awaitWake(t, out)
	}

	plain, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	assert.True(t, plain.ClockSet(), "without WithBootClock ts is always real time")
}

func TestWakeAndRunNeverAtOnce(t *testing.T) {
	c := newSleeper(t, shellyws.DefaultConfig(), shellyws.WithAwakeIdle(10*time.Millisecond))
	release := c.HoldAwake()
	out := startWake(t, c)
	waitFor(t, "the wake to start", func() bool { return c.Stats().Wakes == 1 })
	_, err := c.Wake(testCtx(t))
	assert.ErrorIs(t, err, shellyws.ErrAlreadyRunning)
	assert.ErrorIs(t, c.Run(testCtx(t)), shellyws.ErrAlreadyRunning)
	release()
	assert.Equal(t, shellyws.WakeIdle, awaitWake(t, out).End)
	assert.False(t, c.InterruptWake(), "no wake under way")
}

func TestWakeContextEndsIt(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan wakeOutcome, 1)
	go func() {
		res, err := c.Wake(ctx)
		out <- wakeOutcome{res, err}
	}()
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	cancel()
	o := <-out
	assert.ErrorIs(t, o.err, context.Canceled)
	assert.Equal(t, shellyws.WakeCanceled, o.res.End)
	assert.Equal(t, websocket.StatusGoingAway, closedWith(t, conn))
}

// Hundreds of wake cycles leave no goroutine and no memory behind.
func TestWakeCyclesDoNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of cycles")
	}
	srv := shellywstest.NewServer(t, shellywstest.WithQueueSize(16))
	c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(5*time.Millisecond))
	base := serveInbound(t, c)
	ctx := testCtx(t)
	cycle := func(i int) {
		// Every tenth wake is talked to on both channels, held awake so
		// that a busy machine cannot let the 5 ms idle time pass first.
		release := func() {}
		if i%10 == 0 {
			release = c.HoldAwake()
		}
		out := make(chan wakeOutcome, 1)
		go func() {
			res, err := c.Wake(ctx)
			out <- wakeOutcome{res, err}
		}()
		conn, err := srv.Accept(ctx)
		require.NoError(t, err)
		_, err = conn.ExpectFullStatus(ctx)
		require.NoError(t, err)
		if i%10 == 0 {
			require.NoError(t, conn.Call(ctx, "Ws.GetStatus", nil, nil))
			code, _ := httpGet(t, base, "/rpc/Ws.GetConfig")
			require.Equal(t, http.StatusOK, code)
		}
		release()
		_, err = conn.ExpectEvent(ctx)
		require.NoError(t, err)
		<-conn.Done()
		o := <-out
		require.NoError(t, o.err)
		require.True(t, o.res.SleepSent)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := range 50 {
		cycle(i)
	}
	goroutines, before := runtime.NumGoroutine(), heap()
	for i := range 300 {
		cycle(i)
	}
	waitFor(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= goroutines })
	after := heap()
	// A leaked connection costs tens of KiB; 300 of them would show.
	assert.Less(t, int64(after)-int64(before), int64(512<<10), "heap grew from %d to %d", before, after)
	assert.Equal(t, uint64(350), c.Stats().Sleeps)
	assert.Equal(t, 350, srv.Handshakes())
}

// A connection the server drops during a wake is redialled once at most;
// the wake then goes on and sleeps at its idle time.
func TestWakeConnectionLostUsesTheRetry(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(100*time.Millisecond))
	base := serveInbound(t, c)
	release := c.HoldAwake() // until both drops are seen, however slow the machine
	out := startWake(t, c)
	for range 2 {
		conn := srv.AcceptT(t)
		conn.ExpectFullStatusT(t)
		require.NoError(t, conn.Close(websocket.StatusInternalError, "crashed"))
	}
	waitFor(t, "the second connection lost", func() bool { return c.Stats().Disconnects == 2 })
	code, body := httpGet(t, base, "/rpc/Ws.GetStatus")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"connected":false}`, body)
	release()
	res := awaitWake(t, out)
	assert.Equal(t, shellyws.WakeIdle, res.End)
	assert.Equal(t, 2, res.Dials)
	assert.True(t, res.Connected)
	assert.False(t, res.SleepSent, "no connection to carry it")
	assert.Equal(t, websocket.StatusInternalError, websocket.CloseStatus(res.Err))
	assert.Equal(t, 2, srv.Handshakes(), "no third dial in one wake")
	assert.Equal(t, uint64(1), c.Stats().Sleeps)
}

// A server asking for a longer back-off (protocol section 12) is not
// retried within the wake: the device sleeps, and its next wake retries.
func TestWakeServerAskingForBackOffIsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse int                  // HTTP status of a refused handshake
		close  websocket.StatusCode // or the close code after the full status
	}{
		{name: "refused 503", refuse: http.StatusServiceUnavailable},
		{name: "refused 429", refuse: http.StatusTooManyRequests},
		{name: "closed 1013", close: websocket.StatusTryAgainLater},
		{name: "closed 1008", close: websocket.StatusPolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := shellywstest.NewServer(t)
			c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(20*time.Millisecond))
			if tc.refuse != 0 {
				srv.RejectNext(1, tc.refuse)
			}
			release := c.HoldAwake() // until the server has spoken, however slow the machine
			out := startWake(t, c)
			if tc.close != 0 {
				conn := srv.AcceptT(t)
				conn.ExpectFullStatusT(t)
				require.NoError(t, conn.Close(tc.close, "later"))
				waitFor(t, "the connection lost", func() bool { return c.Stats().Disconnects == 1 })
			} else {
				waitFor(t, "the dial refused", func() bool { return c.Stats().DialFailures == 1 })
			}
			release()
			res := awaitWake(t, out)
			assert.Equal(t, shellyws.WakeIdle, res.End)
			assert.Equal(t, 1, res.Dials)
			assert.Equal(t, 1, srv.Handshakes())

			out = startWake(t, c)
			conn := srv.AcceptT(t)
			conn.ExpectFullStatusT(t)
			expectSleepEvent(t, conn)
			awaitWake(t, out)
		})
	}
}
