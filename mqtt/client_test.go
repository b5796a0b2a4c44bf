package mqtt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/mosquitto"
	"github.com/shellyws/shellyws/mqtt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

const testID = "shellyplus1pm-c049ef8cf4e0"

func ptr(s string) *string { return &s }

// testConfig is an enabled config for broker, every notification on.
func testConfig(broker, prefix string) mqtt.Config {
	return mqtt.Config{
		Enable: true, Server: ptr(broker), TopicPrefix: ptr(prefix),
		EnableRPC: true, RPCNtf: true, StatusNtf: true,
	}
}

// statuses is a StatusSource of fixed values.
type statuses map[string]string

func (s statuses) Keys() []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	return keys
}

func (s statuses) Status(key string) (json.RawMessage, error) {
	v, ok := s[key]
	if !ok {
		return nil, errors.New("no such component")
	}
	return json.RawMessage(v), nil
}

// fastBackoff retries in milliseconds.
func fastBackoff() mqtt.Option {
	return mqtt.WithBackoff(shellyws.ExponentialBackoff(5*time.Millisecond, 20*time.Millisecond))
}

// device is a component with a few methods and its MQTT client.
type device struct {
	c     *shellyws.Component
	cl    *mqtt.Client
	calls atomic.Int32
	chans chan shellyws.Channel
}

func newDevice(t *testing.T, cfg mqtt.Config, opts ...mqtt.Option) *device {
	t.Helper()
	d := &device{chans: make(chan shellyws.Channel, 16)}
	m := shellyws.NewMux()
	m.HandleFunc("Test.Echo", func(_ context.Context, req *shellyws.Request) (any, error) {
		d.calls.Add(1)
		select {
		case d.chans <- req.Channel:
		default:
		}
		if req.Params == nil {
			return nil, nil
		}
		return req.Params, nil
	})
	c, err := shellyws.New(testID, shellyws.WithDispatcher(m))
	require.NoError(t, err)
	d.c = c
	d.cl, err = mqtt.New(c, cfg, append([]mqtt.Option{fastBackoff()}, opts...)...)
	require.NoError(t, err)
	return d
}

// run runs the client until the test ends (or stop is called) and checks
// that Run returns nil.
func (d *device) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.cl.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(2 * waitTimeout):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestConnectSequenceAndCleanStop(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, "dev1/#")
	d := newDevice(t, testConfig(b.Addr, "dev1"), mqtt.WithStatus(statuses{"sys": `{"mac":"C049EF8CF4E0"}`}))
	stop := d.run(t)

	// online true first, QoS 1, then the NotifyStatus of mqtt.connected
	// on events/rpc and its whole status on status/mqtt.
	m := sub.Next(t, waitTimeout)
	assert.Equal(t, mosquitto.Msg{Topic: "dev1/online", Payload: "true", QoS: 1}, m)
	m = sub.Next(t, waitTimeout)
	assert.Equal(t, "dev1/events/rpc", m.Topic)
	assert.Equal(t, 1, m.QoS)
	assert.Regexp(t, `^\{"src":"`+testID+`","dst":"dev1/events","method":"NotifyStatus","params":\{"ts":[0-9.]+,"mqtt":\{"connected":true\}\}\}$`, m.Payload)
	m = sub.Next(t, waitTimeout)
	assert.Equal(t, mosquitto.Msg{Topic: "dev1/status/mqtt", Payload: `{"connected":true}`, QoS: 1}, m)
	assert.True(t, d.cl.Connected())
	assert.Equal(t, mqtt.Status{Connected: true}, d.cl.Status())

	// online is retained: a client subscribing later gets it at once.
	late := b.Subscribe(t, "dev1/online", "dev1/events/rpc", "dev1/status/#")
	assert.Equal(t, mosquitto.Msg{Topic: "dev1/online", Payload: "true", QoS: 1, Retained: true}, late.Next(t, waitTimeout))
	late.None(t, 200*time.Millisecond) // notifications and status are not retained

	stop()
	assert.Equal(t, mosquitto.Msg{Topic: "dev1/online", Payload: "false", QoS: 1}, sub.Next(t, waitTimeout))
	assert.False(t, d.cl.Connected())
	after := b.Subscribe(t, "dev1/online")
	assert.Equal(t, mosquitto.Msg{Topic: "dev1/online", Payload: "false", QoS: 1, Retained: true}, after.Next(t, waitTimeout),
		"a clean stop leaves online false retained")
}

func TestRequestsAnswered(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, "tester/rpc", "other/rpc")
	d := newDevice(t, testConfig(b.Addr, "dev2"))
	d.run(t)
	require.Eventually(t, d.cl.Connected, waitTimeout, time.Millisecond)

	b.Publish(t, "dev2/rpc", `{"id":"x1","src":"tester","method":"Test.Echo","params":{"on":true}}`)
	m := sub.Next(t, waitTimeout)
	assert.Equal(t, mosquitto.Msg{Topic: "tester/rpc", QoS: 1,
		Payload: `{"id":"x1","src":"` + testID + `","dst":"tester","result":{"on":true}}`}, m)
	assert.Equal(t, shellyws.ChannelMQTT, <-d.chans)

	// <prefix>/rpc/# is served too; an unknown method is answered 404.
	b.Publish(t, "dev2/rpc/anything", `{"id":2,"src":"other","method":"Nope.Nothing"}`)
	assert.Equal(t, `{"id":2,"src":"`+testID+`","dst":"other","error":{"code":404,"message":"No handler for Nope.Nothing"}}`,
		sub.Next(t, waitTimeout).Payload)

	// Without src: executed, not answered; garbage: dropped. The next
	// request is answered.
	b.Publish(t, "dev2/rpc", `{"id":3,"method":"Test.Echo"}`)
	b.Publish(t, "dev2/rpc", `not json`)
	b.Publish(t, "dev2/rpc", `{"id":4,"src":"a/+/b","method":"Test.Echo"}`) // no topic for that src
	b.Publish(t, "dev2/rpc", `{"id":5,"src":"tester","method":"Test.Echo"}`)
	assert.Equal(t, `{"id":5,"src":"`+testID+`","dst":"tester","result":null}`, sub.Next(t, waitTimeout).Payload)
	assert.Equal(t, int32(4), d.calls.Load())
}

func TestNotificationsAndStatusUpdate(t *testing.T) {
	b := mosquitto.Start(t)
	src := statuses{"switch:0": `{"id":0,"output":true,"apower":0.0}`, "sys": `{"uptime":1}`}
	d := newDevice(t, testConfig(b.Addr, "shellies/plus1pm"), mqtt.WithStatus(src))
	sub := b.Subscribe(t, "shellies/plus1pm/events/rpc", "shellies/plus1pm/status/#")
	d.run(t)
	sub.Expect(t, "shellies/plus1pm/status/mqtt", waitTimeout) // the connect's

	require.NoError(t, d.c.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true, "source": "MQTT"}}))
	m := sub.Next(t, waitTimeout)
	assert.Equal(t, "shellies/plus1pm/events/rpc", m.Topic)
	assert.Regexp(t, `^\{"src":"`+testID+`","dst":"shellies/plus1pm/events","method":"NotifyStatus","params":\{"ts":[0-9.]+,"switch:0":\{"output":true,"source":"MQTT"\}\}\}$`, m.Payload)
	assert.Equal(t, mosquitto.Msg{Topic: "shellies/plus1pm/status/switch:0", Payload: `{"id":0,"output":true,"apower":0.0}`, QoS: 1},
		sub.Next(t, waitTimeout), "the whole status, numbers as the source has them")

	require.NoError(t, d.c.NotifyEvent(shellyws.Event{Component: "input:0", Event: "single_push"}))
	m = sub.Next(t, waitTimeout)
	assert.Contains(t, m.Payload, `"method":"NotifyEvent"`)
	sub.None(t, 200*time.Millisecond) // an event has no status

	b.Publish(t, "shellies/plus1pm/command", "status_update")
	got := map[string]string{}
	for range 3 {
		m := sub.Next(t, waitTimeout)
		got[m.Topic] = m.Payload
	}
	assert.Equal(t, map[string]string{
		"shellies/plus1pm/status/switch:0": `{"id":0,"output":true,"apower":0.0}`,
		"shellies/plus1pm/status/sys":      `{"uptime":1}`,
		"shellies/plus1pm/status/mqtt":     `{"connected":true}`,
	}, got)
}

func TestNotificationsOff(t *testing.T) {
	b := mosquitto.Start(t)
	cfg := testConfig(b.Addr, "quiet")
	cfg.RPCNtf, cfg.StatusNtf = false, false
	d := newDevice(t, cfg)
	sub := b.Subscribe(t, "quiet/#")
	d.run(t)
	assert.Equal(t, "quiet/online", sub.Next(t, waitTimeout).Topic)
	require.NoError(t, d.c.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}}))
	sub.None(t, 300*time.Millisecond)
}

// cutDialer dials the broker and can cut every connection it made without
// a DISCONNECT, as a dead network does, and refuse new ones.
type cutDialer struct {
	mu     sync.Mutex
	conns  []*cutConn
	refuse bool
	dials  atomic.Int32
}

// cutConn reports a cut as the peer's EOF: paho ignores the error of a
// socket closed on its own side, as after its DISCONNECT.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.cut.Load() {
		err = io.EOF
	}
	return n, err
}

func (c *cutDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		return nil, errors.New("refused by the test")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: conn}
	c.conns = append(c.conns, cc)
	return cc, nil
}

func (c *cutDialer) cut(refuse bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = refuse
	for _, conn := range c.conns {
		conn.cut.Store(true)
		_ = conn.Close()
	}
	c.conns = nil
}

func (c *cutDialer) allow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = false
}

func TestWillReconnectAndOfflineQueue(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, "dev3/online", "dev3/events/rpc")
	dialer := &cutDialer{}
	d := newDevice(t, testConfig(b.Addr, "dev3"), mqtt.WithDialContext(dialer.dial),
		mqtt.WithKeepAlive(time.Second))
	d.run(t)
	assert.Equal(t, "true", sub.Expect(t, "dev3/online", waitTimeout).Payload)
	sub.Expect(t, "dev3/events/rpc", waitTimeout)

	// The connection dies without a DISCONNECT: the broker publishes the
	// will (when it notices: the keep-alive) and the client retries,
	// refused for now.
	dials := dialer.dials.Load()
	dialer.cut(true)
	assert.Equal(t, mosquitto.Msg{Topic: "dev3/online", Payload: "false", QoS: 1}, sub.Expect(t, "dev3/online", waitTimeout))
	require.Eventually(t, func() bool { return !d.cl.Connected() && dialer.dials.Load() > dials+1 }, waitTimeout, time.Millisecond)

	// While disconnected the last 5 notifications wait.
	for i := range 8 {
		require.NoError(t, d.c.NotifyStatus(map[string]any{"n": i}))
	}
	dialer.allow()
	assert.Equal(t, "true", sub.Expect(t, "dev3/online", waitTimeout).Payload)
	for i := 3; i < 8; i++ {
		assert.Contains(t, sub.Expect(t, "dev3/events/rpc", waitTimeout).Payload, fmt.Sprintf(`"n":%d}`, i))
	}
	assert.Contains(t, sub.Expect(t, "dev3/events/rpc", waitTimeout).Payload, `"mqtt":{"connected":true}`)
}

func TestBrokerAwayRetries(t *testing.T) {
	// Nothing listens: the client keeps trying and Run still ends at once
	// with its context.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dialer := &cutDialer{}
	d := newDevice(t, testConfig(addr, "x"), mqtt.WithDialContext(dialer.dial))
	stop := d.run(t)
	require.Eventually(t, func() bool { return dialer.dials.Load() >= 3 }, waitTimeout, time.Millisecond)
	assert.False(t, d.cl.Connected())
	stop()
}

func TestDisabledRunReturns(t *testing.T) {
	d := newDevice(t, mqtt.Config{})
	assert.NoError(t, d.cl.Run(context.Background()))
}

func TestDefaultsToDeviceID(t *testing.T) {
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, testID+"/online")
	cfg := testConfig(b.Addr, "")
	cfg.TopicPrefix = nil
	d := newDevice(t, cfg)
	assert.Equal(t, testID, d.cl.TopicPrefix())
	d.run(t)
	assert.Equal(t, "true", sub.Next(t, waitTimeout).Payload)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mqtt.Config
		ok   bool
	}{
		{"disabled without server", mqtt.Config{}, true},
		{"enabled", mqtt.Config{Enable: true, Server: ptr("10.0.0.1:1883")}, true},
		{"no server", mqtt.Config{Enable: true}, false},
		{"no port", mqtt.Config{Enable: true, Server: ptr("broker")}, false},
		{"bad port", mqtt.Config{Enable: true, Server: ptr("broker:0")}, false},
		{"scheme", mqtt.Config{Enable: true, Server: ptr("mqtt://broker:1883")}, false},
		{"ssl_ca", mqtt.Config{Enable: true, Server: ptr("b:1"), SSLCA: ptr("x.pem")}, false},
		{"ssl_ca *", mqtt.Config{Enable: true, Server: ptr("b:1"), SSLCA: ptr("*")}, true},
		{"wildcard prefix", mqtt.Config{Enable: true, Server: ptr("b:1"), TopicPrefix: ptr("a/#")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, shellyws.CodeInvalidArgument, shellyws.AsError(err).Code)
		})
	}
}

func TestConfigPassNeverEncoded(t *testing.T) {
	cfg := mqtt.Config{Enable: true, Server: ptr("b:1"), User: ptr("u"), Pass: ptr("hunter2")}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "hunter2")
	c, err := shellyws.New(testID)
	require.NoError(t, err)
	cl, err := mqtt.New(c, cfg)
	require.NoError(t, err)
	assert.Nil(t, cl.Config().Pass)
}
