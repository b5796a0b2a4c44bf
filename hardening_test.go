package shellyws_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// A backoff policy is a function of the attempt, so no factory can return
// nil (one did, and Run panicked), and nil means the default. The waits of
// ExponentialBackoff double from initial to the cap, each within ±50 %,
// for any attempt; bounds that would spin are raised.
func TestExponentialBackoff(t *testing.T) {
	_, err := shellyws.New(testDeviceID, shellyws.WithBackoff(nil))
	require.NoError(t, err, "nil is the default policy")
	for _, tc := range []struct {
		name         string
		policy       func(int) time.Duration
		first, capAt time.Duration
	}{
		{"default", shellyws.DefaultBackoff, time.Second, time.Minute},
		{"1 ms to 20 ms", shellyws.ExponentialBackoff(time.Millisecond, 20*time.Millisecond), time.Millisecond, 20 * time.Millisecond},
		{"zero bounds", shellyws.ExponentialBackoff(0, 0), time.Millisecond, time.Millisecond},
		{"cap below initial", shellyws.ExponentialBackoff(time.Second, time.Millisecond), time.Second, time.Second},
	} {
		jittered := false
		for attempt := -1; attempt <= 200; attempt++ {
			base := time.Duration(math.Min(float64(tc.first)*math.Pow(2, float64(max(attempt, 1)-1)), float64(tc.capAt)))
			d := tc.policy(attempt)
			require.GreaterOrEqual(t, d, base/2, "%s: attempt %d", tc.name, attempt)
			require.LessOrEqual(t, d, base*3/2, "%s: attempt %d", tc.name, attempt)
			jittered = jittered || d != base
		}
		assert.True(t, jittered, "%s: randomized", tc.name)
	}
}

// Zero or negative wake times are errors, as every other duration is.
func TestNewRefusesZeroWakeTimes(t *testing.T) {
	for _, tc := range []struct {
		opt  shellyws.Option
		name string
	}{
		{shellyws.WithAwakeIdle(0), "WithAwakeIdle"},
		{shellyws.WithAwakeIdle(-time.Second), "WithAwakeIdle"},
		{shellyws.WithAwakeMax(0), "WithAwakeMax"},
		{shellyws.WithAwakeMax(-time.Second), "WithAwakeMax"},
	} {
		_, err := shellyws.New(testDeviceID, tc.opt)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.name)
	}
	_, err := shellyws.New(testDeviceID, shellyws.WithAwakeIdle(time.Millisecond), shellyws.WithAwakeMax(time.Second))
	assert.NoError(t, err)
}

// ErrAlreadyRunning names both ways a device runs: the clash may be a
// Wake, and the error a call returns says which clash it was.
func TestErrAlreadyRunningNamesRunAndWake(t *testing.T) {
	msg := shellyws.ErrAlreadyRunning.Error()
	assert.Contains(t, msg, "Run")
	assert.Contains(t, msg, "Wake")
	assert.NotContains(t, msg, "twice")

	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(srv.URL()))
	require.NoError(t, dev.AwaitConnected(testCtx(t)))
	err := dev.Run(testCtx(t))
	require.ErrorIs(t, err, shellyws.ErrAlreadyRunning)
	assert.Contains(t, err.Error(), "Run was already called")
	_, err = dev.Wake(testCtx(t))
	require.ErrorIs(t, err, shellyws.ErrAlreadyRunning)
	assert.Contains(t, err.Error(), "Run was called")
	assert.NotContains(t, err.Error(), "Wake is running")
	err = dev.Start(testCtx(t))
	require.ErrorIs(t, err, shellyws.ErrAlreadyRunning, "Start is Run without the wait")
	assert.Contains(t, err.Error(), "Run was already called")
}

// A device id is <model>-<12 hex digits>; anything else is refused with
// an error that says what an id looks like.
func TestNewRefusesMalformedDeviceIDs(t *testing.T) {
	for _, id := range []string{
		"shellyplus1pm-c049ef8cf4e0",
		"shellyplus1pm-C049EF8CF4E0",
		"ShellyWallDisplay-00082261E102", // the Wall Display's upper-case MAC
		"shelly_x-y-c049ef8cf4e0",        // '-' and '_' in the model part
	} {
		_, err := shellyws.New(id)
		assert.NoError(t, err, id)
	}
	for _, id := range []string{
		"",
		"dev",
		"c049ef8cf4e0",
		"-c049ef8cf4e0",
		"--c049ef8cf4e0",
		"_x-c049ef8cf4e0",
		"shellyplus1pm-",
		"shellyplus1pm-c049ef8cf4e",    // 11 digits
		"shellyplus1pm-c049ef8cf4e00",  // 13
		"shellyplus1pm-c049ef8cf4eg",   // not hex
		"shelly plus-c049ef8cf4e0",     // a space
		"shellyplus1pm-c049ef8cf4e0\n", // a newline
		"shellyé-c049ef8cf4e0",         // not ASCII
		"shellyplus1pm_c049ef8cf4e0",   // no '-' before the MAC
	} {
		_, err := shellyws.New(id)
		if assert.Error(t, err, "%q", id) {
			assert.Contains(t, err.Error(), "12 hex", "%q", id)
		}
	}
}

// A status key must name a component: NotifyStatus refuses "" and so does
// the full status, whose connection then fails and says why.
func TestEmptyStatusKeyIsRefused(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(srv.URL()), shellyws.WithFullStatus(func(context.Context) (map[string]any, error) {
		return map[string]any{"": map[string]any{"x": 1}, "sys": map[string]any{"mac": "C049EF8CF4E0"}}, nil
	}))
	err := dev.NotifyStatus(map[string]any{"": map[string]any{"output": true}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty")
	assert.Zero(t, dev.Stats().Queued)

	ctx := testCtx(t)
	conn, err := srv.Accept(ctx)
	require.NoError(t, err)
	select {
	case <-conn.Done():
	case <-ctx.Done():
		t.Fatal("the connection with a bad full status stayed up")
	}
	assert.Equal(t, websocket.StatusInternalError, websocket.CloseStatus(conn.Err()))
	require.Eventually(t, func() bool { return dev.LastError() != nil }, waitTimeout, time.Millisecond)
	assert.Contains(t, dev.LastError().Error(), "status key is empty")
}

// A request with an id whose method is not a non-empty string is answered
// -103 with that id (and its src as dst), on the outbound connection and
// on an inbound websocket; the connection stays up. Without an id it is
// dropped, as before.
func TestBadMethodWithAnIDIsAnswered(t *testing.T) {
	srv := shellywstest.NewServer(t)
	startDevice(t, enabledConfig(srv.URL()))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)
	for in, want := range map[string]string{
		`{"id":7,"src":"fm","method":5}`:     `{"id":7,"src":"` + testDeviceID + `","dst":"fm","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`,
		`{"id":"a","method":{"x":1}}`:        `{"id":"a","src":"` + testDeviceID + `","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`,
		`{"id":0,"src":3,"method":""}`:       `{"id":0,"src":"` + testDeviceID + `","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`,
		`{"id":8,"method":["Ws.GetStatus"]}`: `{"id":8,"src":"` + testDeviceID + `","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`,
	} {
		got, err := conn.CallRaw(ctx, []byte(in))
		require.NoError(t, err, in)
		assert.JSONEq(t, want, string(got), in)
		assert.Equal(t, want, string(got), "%s: keys in the device's order", in)
	}
	require.NoError(t, conn.Send(ctx, []byte(`{"src":"fm","method":5}`)))
	got, err := conn.CallRaw(ctx, []byte(`{"id":9,"method":"Ws.GetStatus"}`))
	require.NoError(t, err)
	assert.Contains(t, string(got), `"result":{"connected":true}`)
	nctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	f, err := conn.Next(nctx)
	assert.Error(t, err, "nothing answers the id-less frame: got %s", f.Raw)

	d := newInboundDevice(t, nil)
	ws := d.dial(t, nil)
	resp, _ := call(t, ctx, ws, `{"id":3,"src":"cli","method":5}`)
	assert.Equal(t, `{"id":3,"src":"`+testDeviceID+`","dst":"cli","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`, resp.raw)
	resp, _ = call(t, ctx, ws, `{"id":4,"method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error, "the client stays")
}

// Protocol section 12, revised: a 1008 or 1013 close of a connection that
// had proved healthy (up for WithHealthyAfter) is an ordinary drop with the
// normal back-off, as when Home Assistant stops; the long wait is for
// younger connections (Fleet Manager's limiter closes at once) and refused
// handshakes.
func TestServerBackoffOnlyForYoungConnections(t *testing.T) {
	srv := shellywstest.NewServer(t)
	rb := newRecordingBackoff(time.Millisecond, 20*time.Millisecond)
	sb := &serverBackoffRecorder{}
	clock := newFakeClock()
	startDevice(t, enabledConfig(srv.URL()), rb.option(), sb.option(), shellyws.WithClock(clock.Now))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)

	for _, step := range []struct {
		name    string
		up      time.Duration
		code    websocket.StatusCode
		longer  bool // the server's longer wait, not the normal policy
		healthy bool // the normal policy is reset first
	}{
		{"1008 after a long session (Home Assistant stops)", defaultHealthyAfter, websocket.StatusPolicyViolation, false, true},
		{"1013 after a long session", time.Hour, websocket.StatusTryAgainLater, false, true},
		{"1008 at once (Fleet Manager's limiter)", 0, websocket.StatusPolicyViolation, true, false},
		{"1013 just short of healthy", defaultHealthyAfter - time.Millisecond, websocket.StatusTryAgainLater, true, false},
		{"1011 after a long session", time.Hour, websocket.StatusInternalError, false, true},
	} {
		beforeServer := len(sb.snapshot())
		beforeNormal, beforeResets := rb.snapshot()
		clock.Advance(step.up)
		require.NoError(t, conn.Close(step.code, "bye"), step.name)
		conn = acceptConnected(t, ctx, srv)
		afterNormal, afterResets := rb.snapshot()
		if step.longer {
			assert.Len(t, sb.snapshot()[beforeServer:], 1, "%s: the server's longer wait", step.name)
			assert.Len(t, afterNormal[len(beforeNormal):], 0, "%s: not the normal policy", step.name)
		} else {
			assert.Empty(t, sb.snapshot()[beforeServer:], "%s: no longer wait", step.name)
			assert.Len(t, afterNormal[len(beforeNormal):], 1, "%s: the normal policy", step.name)
		}
		assert.Equal(t, step.healthy, afterResets > beforeResets, "%s: reset", step.name)
	}
}

// A server-requested back-off is said at the default log level, with why
// and how long, and without the URL's query or user info.
func TestServerBackoffIsLoggedAtTheDefaultLevel(t *testing.T) {
	const secret = "s3cr3t-remote-key"
	srv := shellywstest.NewServer(t)
	u := strings.Replace(srv.URL(), "ws://", "ws://user:"+secret+"pw@", 1) + "?remote_key=" + secret
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil)) // Info, the default level
	wait := time.Minute + 23*time.Second
	var calls atomic.Int32
	dev := startDevice(t, enabledConfig(u), shellyws.WithLogger(log),
		shellyws.WithServerBackoff(func(time.Duration) time.Duration {
			if calls.Add(1) == 1 {
				return time.Millisecond
			}
			return wait
		}))
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)
	require.NoError(t, conn.Close(websocket.StatusTryAgainLater, "busy"))
	conn = acceptConnected(t, ctx, srv)
	srv.RejectNext(1, http.StatusTooManyRequests)
	require.NoError(t, conn.Close(websocket.StatusInternalError, "oops"))
	require.Eventually(t, func() bool { return calls.Load() == 2 }, waitTimeout, time.Millisecond)
	require.Eventually(t, func() bool { return len(logs.Lines("server asked to back off")) == 2 }, waitTimeout, time.Millisecond)
	lines := logs.Lines("server asked to back off")
	assert.Contains(t, lines[0], "server asked to back off (close 1013): retrying in 1ms")
	assert.Contains(t, lines[1], "server asked to back off (HTTP 429): retrying in 1m23s")
	for _, l := range lines {
		assert.Contains(t, l, "level=WARN")
		assert.Contains(t, l, srv.Addr(), "which server")
		assert.NotContains(t, l, secret)
		assert.NotContains(t, l, "user")
	}
	_ = dev
}

// A wake's connection closed with 1008 or 1013 after it proved healthy is
// an ordinary drop: the wake retries it at once, as any lost connection.
func TestWakeRetriesALongSessionClosedWith1008(t *testing.T) {
	srv := shellywstest.NewServer(t)
	clock := newFakeClock()
	c := newSleeper(t, enabledConfig(srv.URL()), shellyws.WithAwakeIdle(20*time.Millisecond), shellyws.WithClock(clock.Now))
	release := c.HoldAwake()
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	clock.Advance(defaultHealthyAfter)
	require.NoError(t, conn.Close(websocket.StatusPolicyViolation, "home assistant stops"))
	conn = srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	release()
	expectSleepEvent(t, conn)
	res := awaitWake(t, out)
	assert.Equal(t, 2, res.Dials)
	assert.True(t, res.SleepSent)
}

// Restart called inside a handler, not through AfterReply, still lets that
// handler's reply out before the 1012 close: a restart waits for the
// replies of the requests already dispatched. Every other run the handler
// works on a little after Restart (returning early if its ctx ends), as a
// handler that saves something would.
func TestRestartInsideAHandlerKeepsItsReply(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	var dev *shellyws.Component
	var calls atomic.Int32
	mux.HandleFunc("Test.Restart", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		dev.Restart()
		if calls.Add(1)%2 == 0 {
			t := time.NewTimer(20 * time.Millisecond)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		return "restarting", nil
	})
	dev = startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux))
	ctx := testCtx(t)
	for run := range 50 {
		conn := acceptConnected(t, ctx, srv)
		var got string
		require.NoError(t, conn.Call(ctx, "Test.Restart", nil, &got), "run %d", run)
		assert.Equal(t, "restarting", got)
		select {
		case <-conn.Done():
		case <-ctx.Done():
			t.Fatalf("run %d: the connection was not closed", run)
		}
		require.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(conn.Err()), "run %d: %v", run, conn.Err())
	}
}

// halfClosingProxy forwards loopback TCP to backend. When the backend goes
// away it half-closes towards the client and keeps accepting, and
// discarding, what the client writes: a socket on which the kernel still
// takes frames for a server that is gone, as a proxy or NAT in front of a
// crashed server gives.
func halfClosingProxy(t *testing.T, backend string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() {
				_, _ = io.Copy(b, c)
				b.Close()
			})
			wg.Go(func() {
				_, _ = io.Copy(c, b)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			})
		}
	})
	return ln.Addr().String()
}

// After a server crash, notifications published once the device has seen
// its connection end are queued, not written to the dead socket, and all
// arrive after the next NotifyFullStatus. The test waits for the device's
// state to leave StateConnected before publishing: a frame written before
// the device noticed may be lost with the connection (at most once).
func TestNotificationsAfterTheServerVanishedAreQueued(t *testing.T) {
	srv := shellywstest.NewServer(t)
	proxy := halfClosingProxy(t, srv.Addr())
	dev := startDevice(t, enabledConfig(strings.Replace(srv.URL(), srv.Addr(), proxy, 1)))
	ctx := testCtx(t)
	for round := range 3 {
		acceptConnected(t, ctx, srv)
		require.NoError(t, dev.AwaitConnected(ctx))
		srv.Stop()
		_, err := dev.WaitForStateChange(ctx, shellyws.StateConnected)
		require.NoError(t, err)
		for i := range 20 {
			require.NoError(t, dev.NotifyEvent(shellyws.Event{Component: "input:0", Event: "single_push", Fields: map[string]any{"n": i}}))
		}
		require.NoError(t, srv.Restart(ctx))
		conn := acceptConnected(t, ctx, srv)
		for i := range 20 {
			ev, err := conn.ExpectEvent(ctx)
			require.NoError(t, err, "round %d: event %d", round, i)
			var e struct{ N int }
			require.NoError(t, json.Unmarshal(ev.Events[0].Raw, &e))
			assert.Equal(t, i, e.N, "round %d: in order", round)
		}
		assert.Zero(t, dev.Stats().Dropped)
		require.NoError(t, conn.Close(websocket.StatusGoingAway, "next round"))
	}
}

// A connection's age is measured on the real clock (WithClock), not on
// the timestamps' clock: with WithBootClock, "ts" jumps from seconds since
// boot to the real time at SetClockSynced, and a connection that drops at
// once after that has not proved healthy.
func TestHealthyTimeIgnoresTheClockBeingSet(t *testing.T) {
	srv := shellywstest.NewServer(t)
	rb := newRecordingBackoff(time.Millisecond, 20*time.Millisecond)
	clock := newFakeClock()
	dev := startDevice(t, enabledConfig(srv.URL()), rb.option(), shellyws.WithClock(clock.Now), shellyws.WithBootClock())
	ctx := testCtx(t)
	conn := acceptConnected(t, ctx, srv)
	// A first drop at once: the next one is the policy's attempt 2, unless
	// the connection between counts as healthy.
	require.NoError(t, conn.Close(websocket.StatusInternalError, "at once"))
	conn = acceptConnected(t, ctx, srv)

	_, beforeResets := rb.snapshot()
	dev.SetClockSynced()
	require.NoError(t, conn.Close(websocket.StatusInternalError, "at once"))
	acceptConnected(t, ctx, srv)
	_, afterResets := rb.snapshot()
	assert.Equal(t, beforeResets, afterResets, "a connection up for no time is not healthy")
}
