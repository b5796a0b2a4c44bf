package shellyws_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A websocket client that never authenticated gets no notifications, even
// once it sent a src: they carry the device's state, which auth protects.
func TestAuthUnauthenticatedClientGetsNoNotifications(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	snoop := d.dial(t, nil)
	resp, _ := call(t, ctx, snoop, `{"id":1,"src":"snoop","method":"Ws.GetStatus"}`)
	frameChallenge(t, resp.Error)
	resp, _ = call(t, ctx, snoop, `{"id":2,"src":"snoop","method":"Shelly.GetDeviceInfo"}`)
	require.Nil(t, resp.Error, "exempt")

	// An authenticated client toggles the switch and sees the delta.
	owner := d.dial(t, nil)
	resp, _ = call(t, ctx, owner, `{"id":1,"src":"owner","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	resp, notes := call(t, ctx, owner, `{"id":2,"src":"owner","method":"Switch.Toggle","params":{"id":0},"auth":`+authObject(nonce, 1, "o")+`}`)
	require.Nil(t, resp.Error)
	if len(notes) == 0 {
		notes = append(notes, readFrame(t, ctx, owner))
	}
	f := notes[0]
	assert.Equal(t, "NotifyStatus", f.Method)
	assert.Equal(t, "owner", f.Dst)

	// The snooper's next frame is the answer to its next request, not the delta.
	resp, notes = call(t, ctx, snoop, `{"id":3,"src":"snoop","method":"Shelly.GetDeviceInfo"}`)
	require.Nil(t, resp.Error)
	assert.Empty(t, notes, "an unauthenticated client was sent notifications")
}
