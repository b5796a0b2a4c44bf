package shellywstest_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

const inboundID = devID

// inboundDevice serves a component's inbound channels on 127.0.0.1 (a
// password turns authentication on) and returns it with the URL of its
// websocket, ws://127.0.0.1:PORT/rpc.
func inboundDevice(t *testing.T, password string) (*shellyws.Component, string) {
	t.Helper()
	var opts []shellyws.Option
	if password != "" {
		opts = append(opts, shellyws.WithAuthStore(shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(inboundID, password))))
	}
	dev, err := shellyws.New(inboundID, opts...)
	require.NoError(t, err)
	h := shellyws.NewHandler(dev)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close) // runs first: closes the websocket clients
	return dev, "ws" + strings.TrimPrefix(srv.URL, "http") + "/rpc"
}

// lineCounter counts transcript lines holding a text.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineCounter) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *lineCounter) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func TestDeviceClientNoPassword(t *testing.T) {
	dev, url := inboundDevice(t, "")
	c := shellywstest.DialDevice(t, url, shellywstest.WithClientSrc("tester"))
	var st shellyws.Status
	c.CallT(t, "Ws.GetStatus", nil, &st)
	assert.False(t, st.Connected)

	var cfg shellyws.Config
	c.CallT(t, "Ws.GetConfig", nil, &cfg)
	assert.False(t, cfg.Enable)
	assert.Equal(t, inboundID, c.Src(), "the device's src")

	err := c.Call(testCtx(t), "Nope.Nothing", nil, nil)
	var e *shellyws.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, shellyws.CodeNoHandler, e.Code)

	// After a request with a src, the device's notifications come to the
	// client, addressed to it.
	require.NoError(t, dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}}))
	delta := c.ExpectStatusT(t)
	assert.Equal(t, "tester", delta.Dst)
	sw := shellywstest.DecodeT[struct {
		Output bool `json:"output"`
	}](t, delta.Changes["switch:0"])
	assert.True(t, sw.Output)
}

func TestDeviceClientPassword(t *testing.T) {
	dev, url := inboundDevice(t, "s3cret")
	log := &lineCounter{}
	c := shellywstest.DialDevice(t, url, shellywstest.WithPassword("s3cret"), shellywstest.WithClientLogf(log.logf))
	for range 10 {
		var st shellyws.Status
		c.CallT(t, "Ws.GetStatus", nil, &st)
		assert.False(t, st.Connected)
	}
	assert.Equal(t, 1, log.count(" 401 "), "one challenge, then the nonce is kept with a growing nc")
	assert.Zero(t, log.count("s3cret"), "the password is never in the transcript")

	// Concurrent calls: each nonce is used by one call at a time.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			var st shellyws.Status
			errs <- c.Call(testCtx(t), "Ws.GetStatus", nil, &st)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	require.NoError(t, dev.NotifyEvent(shellyws.Event{Component: "input:0", ID: new(0), Event: "single_push"}))
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "single_push", ev.Events[0].Event)
}

func TestDeviceClientRefused(t *testing.T) {
	_, url := inboundDevice(t, "s3cret")
	for name, opts := range map[string][]shellywstest.DeviceOption{
		"no password":    nil,
		"wrong password": {shellywstest.WithPassword("guess")},
	} {
		c := shellywstest.DialDevice(t, url, opts...)
		err := c.Call(testCtx(t), "Ws.GetStatus", nil, nil)
		var e *shellyws.Error
		require.ErrorAs(t, err, &e, name)
		assert.Equal(t, shellyws.CodeUnauthorized, e.Code, name)
		ch, err := shellywstest.ParseChallenge(e.Message)
		require.NoError(t, err, name)
		assert.Equal(t, inboundID, ch.Realm, name)
	}
}

func TestDialDeviceErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, bad := range []string{"http://127.0.0.1:1/rpc", "ws://", "::"} {
		_, err := shellywstest.DialDeviceContext(ctx, bad)
		assert.ErrorContains(t, err, "want ws://HOST:PORT/rpc", bad)
	}
	_, err := shellywstest.DialDeviceContext(ctx, "ws://admin:pw-secret@127.0.0.1:1/rpc?token=query-secret")
	require.Error(t, err, "nothing listens on port 1")
	assert.NotContains(t, err.Error(), "pw-secret")
	assert.NotContains(t, err.Error(), "query-secret")
	assert.Contains(t, err.Error(), "ws://127.0.0.1:1/rpc")

	_, url := inboundDevice(t, "")
	log := &lineCounter{}
	c := shellywstest.DialDevice(t, url+"?token=query-secret", shellywstest.WithClientLogf(log.logf))
	c.CallT(t, "Ws.SetConfig", map[string]any{"config": map[string]any{"server": "ws://127.0.0.1:1/?key=param-secret"}}, nil)
	assert.Equal(t, 1, log.count("<- client call Ws.SetConfig id=1"))
	assert.Zero(t, log.count("query-secret"), "no query value in the transcript")
	assert.Zero(t, log.count("param-secret"), "no params in the transcript")

	c, err = shellywstest.DialDeviceContext(ctx, url)
	require.NoError(t, err)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
	err = c.Call(ctx, "Ws.GetStatus", nil, nil)
	assert.True(t, errors.Is(err, shellywstest.ErrConnClosed), "%v", err)
}
