//go:build race

package evws

import (
	"context"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRaceDetectorSeesTheSocket: the race detector orders a write to a
// socket before the read that gets its bytes only when both sides go
// through the syscall package, as net does. A handler reading what a test
// set before sending it a message must not be reported as a race, on
// either side: the poller's reads and its writes both keep that order.
// The test exists only under -race, where a lost order fails it.
func TestRaceDetectorSeesTheSocket(t *testing.T) {
	srv := newWSServer(t, false, nil)
	o := modes[0].options(t)
	var setByTest int
	seen := make(chan int, 1)
	r := newRecorder()
	r.onMessage = func(*Conn, []byte) { seen <- setByTest }
	c := dial(t, srv.url(), o, r)
	a := srv.accept(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for i := 1; i <= 50; i++ {
		setByTest = i
		require.NoError(t, a.c.Write(ctx, websocket.MessageText, []byte("go")))
		assert.Equal(t, i, <-seen)
		r.message(t)
	}

	// The other way: what the poller's side set before its write is
	// ordered before a net reader's read of it.
	var setByDevice int
	for i := 1; i <= 50; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			setByDevice = i
			assert.NoError(t, c.Write([]byte("back")))
		}()
		_, data, err := a.c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, "back", string(data))
		assert.Equal(t, i, setByDevice)
		<-done
	}
}
