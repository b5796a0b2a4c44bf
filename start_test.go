package shellyws_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// TestStartHoldsNoGoroutinePerIdleDevice: devices started with Start hold
// no goroutine each once connected and idle, before and after serving a
// request (Run would hold one each); the library's goroutines are the
// process's poller at most. Done and Wait say when each has ended, after
// its connection closed with 1001.
func TestStartHoldsNoGoroutinePerIdleDevice(t *testing.T) {
	const n = 40
	srv := shellywstest.NewServer(t)
	base := hostileLibraryGoroutines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	devs := make([]*shellyws.Component, n)
	for i := range devs {
		dev, err := shellyws.New(fmt.Sprintf("shellyplus1pm-%012x", i), append(fastOptions(),
			shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))))...)
		require.NoError(t, err)
		assert.Nil(t, dev.Done(), "no Done before Start")
		dev.Wait() // returns at once before Start
		require.NoError(t, dev.Start(ctx))
		devs[i] = dev
	}
	conns := make([]*shellywstest.Conn, n)
	for i := range conns {
		conns[i] = acceptConnected(t, testCtx(t), srv)
	}
	for _, dev := range devs {
		require.NoError(t, dev.AwaitConnected(testCtx(t)))
	}
	idle := func(what string) {
		t.Helper()
		// Short-lived goroutines (the dials, a handoff) end by themselves.
		require.Eventually(t, func() bool { return hostileLibraryGoroutines() <= base+2 }, waitTimeout, time.Millisecond,
			"%s: %d library goroutines for %d idle devices, baseline %d", what, hostileLibraryGoroutines(), n, base)
	}
	idle("connected")
	for _, conn := range conns {
		var st shellyws.Status
		require.NoError(t, conn.Call(testCtx(t), "Ws.GetStatus", nil, &st))
		assert.True(t, st.Connected)
	}
	idle("after a request each")

	cancel()
	for i, dev := range devs {
		select {
		case <-dev.Done():
		case <-time.After(waitTimeout):
			t.Fatalf("device %d: Done not closed after its context ended", i)
		}
		dev.Wait()
		assert.Equal(t, shellyws.StateClosed, dev.State())
	}
	for i, conn := range conns {
		select {
		case <-conn.Done():
		case <-time.After(waitTimeout):
			t.Fatalf("connection %d still open", i)
		}
		assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(conn.Err()), "connection %d", i)
	}
	require.Eventually(t, func() bool { return hostileLibraryGoroutines() <= base }, waitTimeout, time.Millisecond,
		"goroutines left after every Wait returned")
}

// TestStartLivesThroughRestartRebootAndBackoff: a started device redials
// after a drop (with back-off), after Restart (1012) and after Reboot (no
// close frame, the boot callbacks in order), as Run does, with no goroutine
// of its own in between.
func TestStartLivesThroughRestartRebootAndBackoff(t *testing.T) {
	srv := shellywstest.NewServer(t)
	booted := make(chan string, 4)
	dev, err := shellyws.New(testDeviceID, append(fastOptions(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig(srv.URL()))),
		shellyws.WithBootTime(10*time.Millisecond),
		shellyws.WithOnReboot(func() { booted <- "reboot" }),
		shellyws.WithOnBoot(func() { booted <- "boot" }))...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, dev.Start(ctx))
	defer func() {
		cancel()
		dev.Wait()
	}()
	tctx := testCtx(t)

	conn := acceptConnected(t, tctx, srv)
	require.NoError(t, conn.Close(websocket.StatusTryAgainLater, "busy")) // server backoff, 1 ms in tests
	conn = acceptConnected(t, tctx, srv)

	dev.Restart()
	<-conn.Done()
	assert.Equal(t, websocket.StatusServiceRestart, websocket.CloseStatus(conn.Err()))
	conn = acceptConnected(t, tctx, srv)

	dev.Reboot()
	<-conn.Done()
	assert.EqualValues(t, -1, websocket.CloseStatus(conn.Err()), "a reboot sends no close frame")
	for _, want := range []string{"reboot", "boot"} {
		select {
		case got := <-booted:
			assert.Equal(t, want, got)
		case <-tctx.Done():
			t.Fatalf("no %s callback", want)
		}
	}
	acceptConnected(t, tctx, srv)
	require.NoError(t, dev.AwaitConnected(tctx))
	st := dev.Stats()
	assert.Equal(t, uint64(4), st.Connects)
	assert.Equal(t, uint64(3), st.Disconnects)
}
