package shellyws_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// TestAuthIdleClientsDoNotHoldTheSlots: with auth on, websocket clients
// that do not authenticate within the auth timeout of their handshake are
// closed with 1008, so eight of them cannot keep the owner out; a client
// that authenticated stays.
func TestAuthIdleClientsDoNotHoldTheSlots(t *testing.T) {
	const timeout = 300 * time.Millisecond
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithAuthTimeout(timeout)})
	require.NoError(t, d.c.SetAuth(shellyws.PasswordAuth(testDeviceID, testPassword)))
	ctx := testCtx(t)

	// The owner authenticates first and keeps its slot.
	owner := d.dial(t, nil)
	resp, _ := call(t, ctx, owner, `{"id":1,"src":"owner","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	resp, _ = call(t, ctx, owner, `{"id":2,"src":"owner","method":"Ws.GetStatus","auth":`+authObject(nonce, 1, "o")+`}`)
	require.Nil(t, resp.Error)

	// Seven idlers, one of them asking only the exempt method: every slot
	// is taken and the next handshake is refused.
	var idlers []*websocket.Conn
	for i := range shellyws.DefaultMaxClients - 1 {
		c := d.dial(t, nil)
		if i == 0 {
			resp, _ := call(t, ctx, c, `{"id":1,"src":"x","method":"Shelly.GetDeviceInfo"}`)
			require.Nil(t, resp.Error)
		}
		idlers = append(idlers, c)
	}
	_, hs, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, hs.StatusCode)

	// After the timeout the idlers are closed with 1008 ...
	for i, c := range idlers {
		_, _, err := c.Read(ctx)
		assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "idler %d: %v", i, err)
	}
	// ... and the owner, who authenticated, is still served.
	resp, _ = call(t, ctx, owner, `{"id":3,"src":"owner","method":"Ws.GetStatus","auth":`+authObject(nonce, 2, "o")+`}`)
	require.Nil(t, resp.Error)
	// A new client gets a slot.
	require.Eventually(t, func() bool {
		c, _, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
		if err != nil {
			return false
		}
		c.CloseNow()
		return true
	}, waitTimeout, 10*time.Millisecond)
}

// TestAuthTimeoutOnlyWithAuth: without a password nobody is closed.
func TestAuthTimeoutOnlyWithAuth(t *testing.T) {
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithAuthTimeout(50 * time.Millisecond)})
	ctx := testCtx(t)
	c := d.dial(t, nil)
	// Well past the timeout, a request is still answered.
	timer := time.NewTimer(200 * time.Millisecond) // the thing under test is that nothing happens in this time
	<-timer.C
	resp, _ := call(t, ctx, c, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus"}`, 1))
	require.Nil(t, resp.Error)
}
