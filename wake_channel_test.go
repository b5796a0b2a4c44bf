package shellyws_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// Requests on a wake's outbound connection say so, as on Run's: a device
// reports the source of a change from Request.Channel.
func TestWakeOutboundRequestChannel(t *testing.T) {
	srv := shellywstest.NewServer(t)
	got := make(chan shellyws.Channel, 1)
	d := shellyws.DispatcherFunc(func(_ context.Context, req *shellyws.Request) (any, error) {
		got <- req.Channel
		return nil, nil
	})
	c, err := shellyws.New("shellyplusht-e86beae8ca14", shellyws.WithDispatcher(d),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))),
		shellyws.WithAwakeIdle(20*time.Millisecond))
	require.NoError(t, err)
	release := c.HoldAwake()
	out := startWake(t, c)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	conn.CallT(t, "Test.Channel", nil, nil)
	assert.Equal(t, shellyws.ChannelOutbound, <-got)
	release()
	awaitWake(t, out)
}
