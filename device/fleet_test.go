package device_test

import (
	"context"
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
