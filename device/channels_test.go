package device_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/mosquitto"
	"github.com/shellyws/shellyws/mqtt"
	"github.com/shellyws/shellyws/shellywstest"
)

// udpCall sends one datagram to addr from a socket of its own and returns
// the reply.
func udpCall(t *testing.T, addr net.Addr, req string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	_, err = c.WriteTo([]byte(req), addr)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitTimeout)))
	buf := make([]byte, 70000)
	n, _, err := c.ReadFrom(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func waitUDP(t *testing.T, d *device.Device) *net.UDPAddr {
	t.Helper()
	require.Eventually(t, func() bool { return d.UDPAddr() != nil }, waitTimeout, time.Millisecond, "the device never listened on UDP")
	return d.UDPAddr()
}

func TestUDPEMGetStatusKeepsTheDumpsDecimals(t *testing.T) {
	p, err := profile.Builtin("pro3em-gen2")
	require.NoError(t, err)
	const id = "shellypro3em-0a1b2c3d4e5f"
	d, _, c, _ := connect(t, device.Options{Model: p, ID: id, Channels: device.ChannelOptions{UDP: "127.0.0.1:0"}})
	addr := waitUDP(t, d)
	assert.Equal(t, "127.0.0.1", addr.IP.String())

	// Sys.GetConfig shows the port it listens on.
	sys := call(t, c, "Sys.GetConfig", nil)
	assert.Equal(t, float64(addr.Port), sys["rpc_udp"].(map[string]any)["listen_port"])

	got := udpCall(t, addr, `{"id":0,"method":"EM.GetStatus","params":{"id":0}}`)
	assert.True(t, strings.HasPrefix(got, `{"id":0,"src":"`+id+`","dst":"unknown","result":{"a_act_power":2166.2,`), got)
	assert.GreaterOrEqual(t, len(got), 250)
	for _, want := range []string{`"a_voltage":227.0`, `"c_act_power":244.0`, `"b_voltage":230.0`, `"total_act_power":2413.825`, `"n_current":null`} {
		assert.Contains(t, got, want)
	}
	// The whole em:0 object: every key of the dump.
	var resp struct{ Result map[string]json.RawMessage }
	require.NoError(t, json.Unmarshal([]byte(got), &resp))
	assert.Len(t, resp.Result, 24)
}

func TestUDPChangeReportsUDPin(t *testing.T) {
	d, _, c, _ := connect(t, device.Options{Channels: device.ChannelOptions{UDP: "127.0.0.1:0"}})
	addr := waitUDP(t, d)
	got := udpCall(t, addr, `{"id":1,"src":"battery","method":"Switch.Set","params":{"id":0,"on":true}}`)
	assert.Equal(t, `{"id":1,"src":"`+testID+`","dst":"battery","result":{"was_on":false}}`, got)
	assert.Equal(t, device.SourceUDP, expectKeyDelta(t, c, "switch:0")["source"])
}

func TestUDPListenPortTakesEffectAtBoot(t *testing.T) {
	d, _, c, _ := connect(t, device.Options{Channels: device.ChannelOptions{UDP: "127.0.0.1:0"}})
	first := waitUDP(t, d)
	free, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := free.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, free.Close())

	res := call(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"rpc_udp": map[string]any{"listen_port": port}}})
	assert.Equal(t, true, res["restart_required"])
	assert.Equal(t, first.Port, d.UDPAddr().Port, "still the old port until the reboot")
	e := rpcError(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"rpc_udp": map[string]any{"listen_port": 70000}}})
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)

	call(t, c, "Shelly.Reboot", nil)
	require.Eventually(t, func() bool { a := d.UDPAddr(); return a != nil && a.Port == port }, waitTimeout, time.Millisecond)
	assert.Contains(t, udpCall(t, d.UDPAddr(), `{"id":1,"method":"Shelly.GetDeviceInfo"}`), `"dst":"unknown","result":{`)
}

func TestNoChannelsWithoutOptions(t *testing.T) {
	// The Pro 1PM's dump has listen_port 8585: a device not told to
	// serve UDP never listens.
	p, err := profile.Builtin("pro1pm-gen2")
	require.NoError(t, err)
	d, _, c, _ := connect(t, device.Options{Model: p, ID: "shellypro1pm-0a1b2c3d4e5f"})
	assert.Nil(t, d.UDPAddr())
	assert.False(t, d.MQTTConnected())
	assert.Equal(t, map[string]any{"connected": false}, call(t, c, "Mqtt.GetStatus", nil))
}

// fastMQTT retries in milliseconds.
func fastMQTT() mqtt.Option {
	return mqtt.WithBackoff(shellyws.ExponentialBackoff(5*time.Millisecond, 20*time.Millisecond))
}

func TestMQTTDevice(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, testID+"/#", "ha/rpc")
	d, _, c, _ := connect(t, device.Options{Channels: device.ChannelOptions{
		MQTTServer: b.Addr, MQTTUser: "u", MQTTPass: "hunter2", MQTTOptions: []mqtt.Option{fastMQTT()},
	}})
	// Anonymous brokers take any user: the client connects.
	assert.Equal(t, "true", sub.Expect(t, testID+"/online", waitTimeout).Payload)
	require.Eventually(t, d.MQTTConnected, waitTimeout, time.Millisecond)
	assert.Equal(t, true, expectKeyDelta(t, c, "mqtt")["connected"], "every channel hears of it")
	assert.Equal(t, map[string]any{"connected": true}, call(t, c, "Mqtt.GetStatus", nil))

	cfg := call(t, c, "Mqtt.GetConfig", nil)
	assert.Equal(t, b.Addr, cfg["server"])
	assert.Equal(t, true, cfg["enable"])
	assert.Equal(t, "u", cfg["user"])
	assert.Nil(t, cfg["ssl_ca"])
	assert.Nil(t, cfg["topic_prefix"], "null: the device id")
	assert.NotContains(t, cfg, "pass", "pass is write-only")
	var all json.RawMessage
	c.CallT(t, "Shelly.GetConfig", nil, &all)
	assert.NotContains(t, string(all), "hunter2")

	// A request over MQTT: answered on <src>/rpc, the change reported with
	// source MQTT on every channel.
	b.Publish(t, testID+"/rpc", `{"id":"t1","src":"ha","method":"Switch.Set","params":{"id":0,"on":true}}`)
	// The reply and its notification come in either order (Expect would
	// skip one that came first).
	var reply, ev mosquitto.Msg
	for i := 0; i < 10 && (reply.Topic == "" || ev.Topic == ""); i++ {
		switch m := sub.Next(t, waitTimeout); m.Topic {
		case "ha/rpc":
			reply = m
		case testID + "/events/rpc":
			if strings.Contains(m.Payload, `"source":"MQTT"`) { // not the connect's
				ev = m
			}
		}
	}
	assert.Equal(t, `{"id":"t1","src":"`+testID+`","dst":"ha","result":{"was_on":false}}`, reply.Payload)
	assert.Contains(t, ev.Payload, `"dst":"`+testID+`/events","method":"NotifyStatus"`)
	assert.Contains(t, ev.Payload, `"source":"MQTT"`)
	assert.Equal(t, device.SourceMQTT, expectKeyDelta(t, c, "switch:0")["source"])

	// MQTT.SetConfig takes effect at the next boot; pass stays hidden.
	res := call(t, c, "MQTT.SetConfig", map[string]any{"config": map[string]any{"pass": "other", "status_ntf": true}})
	assert.Equal(t, true, res["restart_required"])
	assert.NotContains(t, call(t, c, "Mqtt.GetConfig", nil), "pass")
	e := rpcError(t, c, "MQTT.SetConfig", map[string]any{"config": map[string]any{"server": "no-port"}})
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)

	// A reboot is a clean stop: online false, then true again after the
	// boot, now with status_ntf.
	call(t, c, "Shelly.Reboot", nil)
	assert.Equal(t, "false", sub.Expect(t, testID+"/online", waitTimeout).Payload)
	assert.Equal(t, "true", sub.Expect(t, testID+"/online", waitTimeout).Payload)
	assert.Equal(t, `{"connected":true}`, sub.Expect(t, testID+"/status/mqtt", waitTimeout).Payload)
}

// expectDelta reads NotifyStatus deltas until one names key, and returns
// its change of key.
func expectKeyDelta(t *testing.T, c *shellywstest.Conn, key string) map[string]any {
	t.Helper()
	for range 20 {
		if raw, ok := c.ExpectStatusT(t).Changes[key]; ok {
			return obj(t, raw)
		}
	}
	t.Fatalf("no NotifyStatus of %s in 20 deltas", key)
	return nil
}

func TestMQTTSleepingDevice(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, htID+"/online")
	srv := shellywstest.NewServer(t)
	d := startSleeper(t, device.Options{Store: enabledStore(srv.URL()), WakeupPeriod: 300 * time.Millisecond,
		Channels: device.ChannelOptions{MQTTServer: b.Addr, MQTTOptions: []mqtt.Option{fastMQTT()}}})
	// Each wake connects; each sleep is a clean stop: the radio goes off.
	for range 2 {
		assert.Equal(t, "true", sub.Next(t, waitTimeout).Payload)
		assert.Equal(t, "false", sub.Next(t, waitTimeout).Payload)
	}
	assert.True(t, d.Sleeping())
}
