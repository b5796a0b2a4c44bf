package device_test

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// fleetSize is what the simulator's -devices must hold against one server.
const fleetSize = 1000

// fleetTimeout bounds each phase of the fleet test; generous for -race on a
// loaded machine, while the phases take about a second each.
const fleetTimeout = 60 * time.Second

// TestFleetSurvivesServerRestart connects 1,000 devices with derived ids to
// one server, restarts the server, and checks that every device comes back
// with a fresh NotifyFullStatus.
func TestFleetSurvivesServerRestart(t *testing.T) {
	srv := shellywstest.NewServer(t)
	base := device.RandomID()
	want := map[string]bool{}
	devices := make([]*device.Device, fleetSize)
	for i := range devices {
		id := device.DeriveID(base, i)
		want[id] = true
		d, err := device.New(withModel(device.Options{
			ID:    id,
			Store: enabledStore(srv.URL()),
			Extra: []shellyws.Option{
				// Spread over 100-800 ms so 1,000 redials do not arrive
				// in one burst, and come back within a second or two.
				shellyws.WithBackoff(shellyws.ExponentialBackoff(200*time.Millisecond, time.Second)),
				// The test's own pace is the load; no keepalive noise.
				shellyws.WithPing(0, 0),
			},
		}))
		require.NoError(t, err)
		devices[i] = d
	}
	require.Len(t, want, fleetSize, "derived ids are distinct")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Go(func() { assert.NoError(t, d.Run(ctx)) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	// acceptAll accepts fleetSize connections and checks that each opens
	// with a NotifyFullStatus whose sys.mac matches its src.
	acceptAll := func(phase string) {
		t.Helper()
		actx, acancel := context.WithTimeout(context.Background(), fleetTimeout)
		defer acancel()
		seen := map[string]bool{}
		for range fleetSize {
			c, err := srv.Accept(actx)
			require.NoError(t, err, "%s: accepted %d of %d", phase, len(seen), fleetSize)
			fs, err := c.ExpectFullStatus(actx)
			require.NoError(t, err, phase)
			require.True(t, want[fs.Src], "%s: unknown src %q", phase, fs.Src)
			require.False(t, seen[fs.Src], "%s: %s connected twice", phase, fs.Src)
			seen[fs.Src] = true
			sys := obj(t, fs.Status["sys"])
			require.Equal(t, device.MACFromID(fs.Src), sys["mac"])
		}
		for _, d := range devices {
			require.NoError(t, d.Component().AwaitConnected(actx), "%s: %s", phase, d.ID())
		}
	}

	start := time.Now()
	acceptAll("first connect")
	t.Logf("%d devices connected in %v", fleetSize, time.Since(start))

	start = time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer rcancel()
	require.NoError(t, srv.Restart(rctx))
	acceptAll("after restart")
	t.Logf("%d devices back after the server restart in %v", fleetSize, time.Since(start))

	for _, d := range devices {
		st := d.Component().Stats()
		assert.GreaterOrEqual(t, st.Connects, uint64(2), d.ID())
	}
}

// libraryGoroutines counts the goroutines running the library's or the
// kit's code (not the test server's).
func libraryGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("shellyws/shellyws.(")) || bytes.Contains(g, []byte("shellyws/shellyws/device.")) {
			count++
		}
	}
	return count
}

// TestAlwaysOnDevicesHoldNoGoroutine: devices that are always on, started
// with Start, hold no goroutine each once connected and idle (the
// simulator starts its fleet so); Wait returns once each has closed its
// connection and stopped.
func TestAlwaysOnDevicesHoldNoGoroutine(t *testing.T) {
	const n = 50
	srv := shellywstest.NewServer(t)
	before := libraryGoroutines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	devs := make([]*device.Device, n)
	for i := range devs {
		d, err := device.New(withModel(device.Options{ID: device.DeriveID(testID, i), Store: enabledStore(srv.URL())}))
		require.NoError(t, err)
		require.NoError(t, d.Start(ctx))
		devs[i] = d
	}
	actx, acancel := context.WithTimeout(context.Background(), waitTimeout)
	defer acancel()
	for range n {
		c, err := srv.Accept(actx)
		require.NoError(t, err)
		_, err = c.ExpectFullStatus(actx)
		require.NoError(t, err)
	}
	for _, d := range devs {
		require.NoError(t, d.Component().AwaitConnected(actx))
	}
	require.Eventually(t, func() bool { return libraryGoroutines() <= before+2 }, waitTimeout, time.Millisecond,
		"%d idle devices hold %d goroutines of the library and kit (before: %d)", n, libraryGoroutines(), before)
	assert.ErrorIs(t, devs[0].Start(ctx), shellyws.ErrAlreadyRunning)

	cancel()
	for _, d := range devs {
		d.Wait()
		assert.Equal(t, shellyws.StateClosed, d.State())
	}
	assert.LessOrEqual(t, libraryGoroutines(), before+2, "after Wait")
}
