//go:build unix

package main

import (
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// TestWakeupPeriodMixedFleet: in a fleet of a Plus H&T and a Plus 1PM,
// -wakeup-period sets the H&T's period and leaves the relay always on: it
// stays connected across the H&T's sleep and next wake, and its status has
// no wakeup_period.
func TestWakeupPeriodMixedFleet(t *testing.T) {
	const htID, relayID = "shellyplusht-c0ffee0000b0", "shellyplus1pm-c0ffee0000b1"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", htID, "-profile", "plusht-gen2,plus1pm-gen2",
		"-devices", "2", "-wakeup-period", "400ms", "-awake-idle", "300ms")
	conns := map[string]*shellywstest.Conn{}
	fulls := map[string]*shellywstest.FullStatus{}
	for range 2 {
		c := srv.AcceptT(t)
		fs := c.ExpectFullStatusT(t)
		fulls[c.Src()], conns[c.Src()] = fs, c
	}
	require.Contains(t, conns, htID)
	require.Contains(t, conns, relayID)
	assert.EqualValues(t, 1, sysOf(t, fulls[htID])["wakeup_period"], "the H&T sleeps with -wakeup-period")
	assert.NotContains(t, sysOf(t, fulls[relayID]), "wakeup_period", "the relay does not sleep")

	relay := conns[relayID]
	expectSleepFrames(t, conns[htID])
	ht2 := srv.AcceptT(t)
	ht2.ExpectFullStatusT(t)
	assert.Equal(t, htID, ht2.Src(), "only the H&T wakes again")
	expectSleepFrames(t, ht2)

	select {
	case <-relay.Done():
		t.Fatalf("the relay's connection ended: %v", relay.Err())
	default:
	}
	var info device.DeviceInfo
	relay.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
	assert.Equal(t, relayID, info.ID, "the relay still answers on its first connection")
	p.stop(t)
	<-relay.Done()
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(relay.Err()), "closed only at the end, with 1001")
}

// TestWakeupPeriodNeedsSleepingModel: -wakeup-period with no sleeping model
// among the profiles is a usage error naming the ones that sleep.
func TestWakeupPeriodNeedsSleepingModel(t *testing.T) {
	for _, args := range [][]string{
		{"-server", "ws://127.0.0.1:1/", "-profile", "plus1pm-gen2,pro3em-gen2", "-wakeup-period", "20s"},
		{"-server", "ws://127.0.0.1:1/", "-wakeup-period", "0"},
	} {
		p := startSimulator(t, args...)
		assert.Equal(t, 2, p.exitCode(t, waitTimeout), "%v", args)
		out := p.out.String()
		assert.Contains(t, out, "-wakeup-period", "%v", args)
		assert.Contains(t, out, "none of the profiles sleeps", "%v", args)
		assert.Contains(t, out, "plusht-gen2", "names a model that sleeps")
		assert.Equal(t, 1, strings.Count(out, "simulator: "), out)
	}
}
