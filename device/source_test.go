package device_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
)

// A change asked for over HTTP reports source HTTP_in, one over a
// websocket WS_in: the device learns the channel from Request.Channel.
func TestSwitchSourceFollowsTheChannel(t *testing.T) {
	d, _, c, _ := connect(t, device.Options{})
	h := shellyws.NewHandler(d.Component())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)

	resp, err := srv.Client().Get(srv.URL + "/rpc/Switch.Toggle?id=0")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, `{"id":0,"output":true,"source":"HTTP_in"}`, string(c.ExpectStatusT(t).Changes["switch:0"]))

	call(t, c, "Switch.Toggle", map[string]any{"id": 0})
	assert.JSONEq(t, `{"id":0,"output":false,"source":"WS_in"}`, string(c.ExpectStatusT(t).Changes["switch:0"]))
}
