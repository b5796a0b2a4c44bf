package shellyws_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// Every option value that would make a broken device makes New fail with
// an error naming the option; nil means the documented default.
func TestNewRejectsBrokenOptions(t *testing.T) {
	var typedNil *shellyws.Mux
	for _, tc := range []struct {
		opt  shellyws.Option
		name string
	}{
		{shellyws.WithDialTimeout(0), "WithDialTimeout"},
		{shellyws.WithDialTimeout(-time.Second), "WithDialTimeout"},
		{shellyws.WithWriteTimeout(0), "WithWriteTimeout"},
		{shellyws.WithHealthyAfter(-1), "WithHealthyAfter"},
		{shellyws.WithPing(-time.Second, time.Second), "WithPing"},
		{shellyws.WithPing(time.Second, 0), "WithPing"},
		{shellyws.WithReadLimit(0), "WithReadLimit"},
		{shellyws.WithMaxInFlight(0), "WithMaxInFlight"},
		{shellyws.WithQueueSize(0), "WithQueueSize"},
		{shellyws.WithQueueSize(-1), "WithQueueSize"},
		{shellyws.WithBootTime(-time.Second), "WithBootTime"},
		{shellyws.WithClock(nil), "WithClock"},
		{shellyws.WithDispatcher(typedNil), "WithDispatcher"},
		{nil, "nil Option"},
	} {
		_, err := shellyws.New(testDeviceID, tc.opt)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.name)
	}
	c, err := shellyws.New(testDeviceID, shellyws.WithLogger(nil), shellyws.WithBackoff(nil),
		shellyws.WithDispatcher(nil), shellyws.WithConfigStore(nil), shellyws.WithServerBackoff(nil),
		shellyws.WithFullStatus(nil), shellyws.WithDialContext(nil), shellyws.WithPing(0, 0),
		shellyws.WithBootTime(0), shellyws.WithHealthyAfter(0))
	require.NoError(t, err, "nil and documented zero values are defaults")
	assert.Equal(t, shellyws.DefaultConfig(), c.GetConfig())
}

// The defaults that nil selects work: a device built with nil options
// connects and answers its own methods.
func TestNilOptionsMeanDefaults(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c, err := shellyws.New(testDeviceID, shellyws.WithLogger(nil), shellyws.WithBackoff(nil),
		shellyws.WithDispatcher(nil), shellyws.WithServerBackoff(nil),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))))
	require.NoError(t, err)
	shellywstest.RunComponent(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	var st shellyws.Status
	conn.CallT(t, "Ws.GetStatus", nil, &st)
	assert.True(t, st.Connected)
}

func TestNotifyRejectsEmptyNotifications(t *testing.T) {
	srv := shellywstest.NewServer(t)
	dev := startDevice(t, enabledConfig(srv.URL()))
	assert.Error(t, dev.NotifyStatus(nil))
	assert.Error(t, dev.NotifyStatus(map[string]any{}))
	assert.Error(t, dev.NotifyStatus(map[string]any{"ts": 1}))
	assert.Error(t, dev.NotifyEvent())
	assert.Error(t, dev.NotifyEvent(shellyws.Event{Event: "single_push"}))
	assert.Error(t, dev.NotifyEvent(shellyws.Event{Component: "input:0"}))
	assert.Zero(t, dev.Stats().Queued)

	// Nothing of the above reached the wire: the next frame after the full
	// status is the valid notification sent last.
	conn := acceptConnected(t, testCtx(t), srv)
	require.NoError(t, dev.NotifyEvent(shellyws.Event{Component: "input:0", Event: "single_push"}))
	ev := conn.ExpectEventT(t)
	assert.Equal(t, "single_push", ev.Events[0].Event)
}

// Enabled without a server, Run says why it does not connect.
func TestEnabledWithoutServerSaysWhy(t *testing.T) {
	log, logs := secDebugLogger()
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	dev := startDevice(t, cfg, shellyws.WithLogger(log))
	require.Eventually(t, func() bool { return errors.Is(dev.LastError(), shellyws.ErrNoServer) }, waitTimeout, time.Millisecond)
	assert.Equal(t, shellyws.StateDisconnected, dev.State())
	require.Eventually(t, func() bool { return len(logs.Lines("level=WARN", "without a server")) > 0 }, waitTimeout, time.Millisecond)
}

// Run is a boot: a config stored before Run is the one it dials with.
func TestRunStartsFromTheStoredConfig(t *testing.T) {
	srv := shellywstest.NewServer(t)
	c, err := shellyws.New(testDeviceID, shellywstest.FastBackoff())
	require.NoError(t, err)
	_, err = c.SetConfig(enabledConfig(srv.URL()))
	require.NoError(t, err)
	shellywstest.RunComponent(t, c)
	srv.AcceptT(t).ExpectFullStatusT(t)
}

// A handler's panic is logged with its stack.
func TestPanicLogHasTheStack(t *testing.T) {
	log, logs := secDebugLogger()
	d := newInboundDevice(t, nil, shellyws.WithLogger(log))
	r := d.get(t, "/rpc/Test.Panic", "")
	require.Equal(t, http.StatusInternalServerError, r.status)
	lines := logs.Lines("handler panicked", "Test.Panic")
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], "panic=boom")
	assert.Contains(t, lines[0], "stack=")
	assert.Contains(t, lines[0], "runtime/debug.Stack", "the stack of the panicking goroutine")
}

// Ws.SetConfig's -103 messages say what is wrong.
func TestSetConfigInvalidParamsSayWhatIsWrong(t *testing.T) {
	d := newInboundDevice(t, nil)
	for params, want := range map[string]string{
		`{}`:                      "Missing required argument 'config'!",
		`{"config":5}`:            "Invalid argument 'config': must be an object",
		`{"config":null}`:         "Invalid argument 'config': must be an object",
		`{"config":"x"}`:          "Invalid argument 'config': must be an object",
		`{"config":{"enable":1}}`: "Invalid argument 'enable': must be a boolean",
	} {
		r := d.post(t, "/rpc/Ws.SetConfig", params)
		assert.Equal(t, http.StatusInternalServerError, r.status, params)
		assert.Contains(t, r.body, `"code":-103`, params)
		assert.Contains(t, r.body, want, params)
	}
	r := d.post(t, "/rpc", `{"id":1,"method":"Ws.SetConfig","params":[1]}`)
	assert.Contains(t, r.body, `"message":"Invalid params: must be an object holding 'config'"`)
}

// Channel names print as documented.
func TestChannelString(t *testing.T) {
	assert.Equal(t, "outbound", shellyws.ChannelOutbound.String())
	assert.Equal(t, "inbound_websocket", shellyws.ChannelInboundWebsocket.String())
	assert.Equal(t, "http", shellyws.ChannelHTTP.String())
	assert.True(t, strings.HasPrefix(shellyws.Channel(0).String(), "Channel("))
}
