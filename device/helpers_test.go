package device_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

const testID = "shellyplus1pm-0a1b2c3d4e5f"

// Figures of the plus1pm-gen2 dump the default device plays.
const (
	dumpCfgRev = 35      // sys.cfg_rev
	dumpEnergy = 110.046 // switch:0 aenergy.total, Wh
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// enabledStore returns a store whose config points at server.
func enabledStore(server string) *shellyws.MemoryStore {
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	cfg.Server = &server
	return shellyws.NewMemoryStore(cfg)
}

// fastBackoff makes reconnects take milliseconds.
func fastBackoff() shellyws.Option {
	return shellyws.WithBackoff(shellyws.ExponentialBackoff(20*time.Millisecond, 200*time.Millisecond))
}

// startDevice runs a device built from o until the test ends; the cleanup
// waits for Run to return, so goleak sees no device goroutine.
func startDevice(t testing.TB, o device.Options) *device.Device {
	t.Helper()
	o.Extra = append([]shellyws.Option{fastBackoff()}, o.Extra...)
	if o.RebootDelay == 0 {
		o.RebootDelay = 20 * time.Millisecond
	}
	if o.BootTime == 0 {
		o.BootTime = 20 * time.Millisecond
	}
	d, err := device.New(withModel(o))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Error("Device.Run did not return after cancel")
		}
	})
	return d
}

// connect starts a device with testID against a fresh server and returns
// both ends, the full status already read.
func connect(t *testing.T, o device.Options) (*device.Device, *shellywstest.Server, *shellywstest.Conn, *shellywstest.FullStatus) {
	t.Helper()
	srv := shellywstest.NewServer(t)
	if o.ID == "" {
		o.ID = testID
	}
	o.Store = enabledStore(srv.URL())
	d := startDevice(t, o)
	c := srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	return d, srv, c, fs
}

// obj decodes raw JSON into a generic object.
func obj(t testing.TB, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "JSON: %s", raw)
	return m
}

// call is CallT decoding the result into a generic value.
func call(t testing.TB, c *shellywstest.Conn, method string, params any) map[string]any {
	t.Helper()
	var raw json.RawMessage
	c.CallT(t, method, params, &raw)
	return obj(t, raw)
}

// rpcError calls method and returns the RPC error it must fail with.
func rpcError(t testing.TB, c *shellywstest.Conn, method string, params any) *shellyws.Error {
	t.Helper()
	err := c.Call(testCtx(t), method, params, nil)
	var e *shellyws.Error
	require.ErrorAs(t, err, &e, "%s %v", method, params)
	return e
}

// newFakeClock is a settable clock for uptime and energy.
func newFakeClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
}

// withModel gives o the default model, a Plus 1PM, unless it names one.
func withModel(o device.Options) device.Options {
	if o.Model == nil {
		p, err := profile.Builtin(profile.Default)
		if err != nil {
			panic(err)
		}
		o.Model = p
	}
	return o
}

// keyType is the type of a component key: "switch" for "switch:0".
func keyType(key string) string {
	t, _, _ := strings.Cut(key, ":")
	return t
}

// keyInstance is the instance number of a component key, if it has one.
func keyInstance(key string) (int, bool) {
	_, n, ok := strings.Cut(key, ":")
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(n)
	return id, err == nil
}
