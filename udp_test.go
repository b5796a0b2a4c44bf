package shellyws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// udpDevice is a component served by ServeUDP on 127.0.0.1, and a client
// socket to talk to it.
type udpDevice struct {
	c      *shellyws.Component
	addr   net.Addr
	client net.PacketConn
}

// startUDP serves c on a free port of 127.0.0.1 until the test ends, and
// checks that ServeUDP returns nil then.
func startUDP(t *testing.T, c *shellyws.Component, opts ...shellyws.UDPOption) *udpDevice {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	client, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- shellyws.ServeUDP(ctx, conn, c, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "ServeUDP after its context ended")
		case <-time.After(waitTimeout):
			t.Error("ServeUDP did not return after its context ended")
		}
		_ = client.Close()
	})
	return &udpDevice{c: c, addr: conn.LocalAddr(), client: client}
}

// send writes one datagram to the device.
func (d *udpDevice) send(t *testing.T, payload string) {
	t.Helper()
	_, err := d.client.WriteTo([]byte(payload), d.addr)
	require.NoError(t, err)
}

// read returns the next datagram the client gets, failing after waitTimeout.
func (d *udpDevice) read(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 70000)
	require.NoError(t, d.client.SetReadDeadline(time.Now().Add(waitTimeout)))
	n, from, err := d.client.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, d.addr.String(), from.String(), "the reply comes from the listening socket")
	return string(buf[:n])
}

// call sends payload and returns the reply.
func (d *udpDevice) call(t *testing.T, payload string) string {
	t.Helper()
	d.send(t, payload)
	return d.read(t)
}

// echoMux answers Test.Echo with its params and Test.Channel with the
// request's channel.
func echoMux() *shellyws.Mux {
	m := shellyws.NewMux()
	m.HandleFunc("Test.Echo", func(_ context.Context, req *shellyws.Request) (any, error) {
		return req.Params, nil
	})
	m.HandleFunc("Test.Channel", func(_ context.Context, req *shellyws.Request) (any, error) {
		return req.Channel.String(), nil
	})
	m.HandleFunc("Shelly.GetDeviceInfo", func(context.Context, *shellyws.Request) (any, error) {
		return map[string]any{"id": testDeviceID}, nil
	})
	return m
}

func newUDPComponent(t *testing.T, d shellyws.Dispatcher, opts ...shellyws.Option) *shellyws.Component {
	t.Helper()
	c, err := shellyws.New(testDeviceID, append([]shellyws.Option{shellyws.WithDispatcher(d)}, opts...)...)
	require.NoError(t, err)
	return c
}

func TestUDPAnswersOneDatagramPerRequest(t *testing.T) {
	d := startUDP(t, newUDPComponent(t, echoMux()))
	// The batteries' request: no src, so dst is "unknown" (section 16.2).
	assert.Equal(t, `{"id":0,"src":"`+testDeviceID+`","dst":"unknown","result":{"id":0}}`,
		d.call(t, `{"id":0,"method":"Test.Echo","params":{"id":0}}`))
	// With a src, dst is that src; a string id is echoed as sent.
	assert.Equal(t, `{"id":"a","src":"`+testDeviceID+`","dst":"me","result":"udp"}`,
		d.call(t, `{"id":"a","src":"me","method":"test.channel"}`))
	assert.Equal(t, `{"id":7,"src":"`+testDeviceID+`","dst":"unknown","error":{"code":404,"message":"No handler for Nope.Nothing"}}`,
		d.call(t, `{"id":7,"method":"Nope.Nothing"}`))
	// A method that is not a non-empty string, with an id: -103 (section 2).
	assert.Equal(t, `{"id":8,"src":"`+testDeviceID+`","dst":"unknown","error":{"code":-103,"message":"Invalid argument 'method': must be a non-empty string"}}`,
		d.call(t, `{"id":8,"method":5}`))
}

func TestUDPDropsGarbageAndAnswersTheNext(t *testing.T) {
	var calls atomic.Int32
	m := echoMux()
	m.HandleFunc("Test.Count", func(context.Context, *shellyws.Request) (any, error) {
		return calls.Add(1), nil
	})
	d := startUDP(t, newUDPComponent(t, m))
	for _, junk := range []string{
		"", "not json", "[1,2]", `{"id":1}`, `{"id":{},"method":"Test.Echo"}`, "\x00\xff", `{"id":1,"method":"Test.Echo"`,
		`{"method":"Test.Count"}`, // executed, never answered
	} {
		d.send(t, junk)
	}
	// The next request is answered, and it is the first reply the client
	// gets: nothing above was answered.
	// (Requests run concurrently: the id-less one may run second.)
	assert.Regexp(t, `^\{"id":2,"src":"`+testDeviceID+`","dst":"unknown","result":[12]\}$`, d.call(t, `{"id":2,"method":"Test.Count"}`))
	require.Eventually(t, func() bool { return calls.Load() == 2 }, waitTimeout, time.Millisecond,
		"the request without id was executed")
}

func TestUDPTooBigReplyIs108(t *testing.T) {
	m := echoMux()
	m.HandleFunc("Test.Big", func(_ context.Context, req *shellyws.Request) (any, error) {
		var p struct{ N int }
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		return strings.Repeat("x", p.N), nil
	})
	d := startUDP(t, newUDPComponent(t, m))
	// The largest reply that fits is sent whole...
	head := `{"id":1,"src":"` + testDeviceID + `","dst":"unknown","result":""}`
	fit := shellyws.MaxDatagram - len(head)
	got := d.call(t, fmt.Sprintf(`{"id":1,"method":"Test.Big","params":{"N":%d}}`, fit))
	assert.Len(t, got, shellyws.MaxDatagram)
	// ...one byte more is -108.
	got = d.call(t, fmt.Sprintf(`{"id":2,"method":"Test.Big","params":{"N":%d}}`, fit+1))
	assert.Equal(t, `{"id":2,"src":"`+testDeviceID+`","dst":"unknown","error":{"code":-108,"message":"Response of 65508 bytes does not fit in one datagram (at most 65507)"}}`, got)
}

func TestUDPLargeRequest(t *testing.T) {
	d := startUDP(t, newUDPComponent(t, echoMux()))
	head := `{"id":1,"method":"Test.Echo","params":{"s":""}}`
	s := strings.Repeat("y", shellyws.MaxDatagram-len(head))
	req := `{"id":1,"method":"Test.Echo","params":{"s":"` + s + `"}}`
	require.Len(t, req, shellyws.MaxDatagram)
	got := d.call(t, req)
	assert.True(t, strings.HasSuffix(got, `"result":{"s":"`+s+`"}}`) || strings.Contains(got, `"code":-108`), got[:80])
}

func TestUDPAuth(t *testing.T) {
	c := newUDPComponent(t, echoMux())
	require.NoError(t, c.SetAuth(shellyws.PasswordAuth(testDeviceID, testPassword)))
	d := startUDP(t, c)

	// Exempt, as on every channel.
	assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","dst":"unknown","result":{"id":"`+testDeviceID+`"}}`,
		d.call(t, `{"id":1,"method":"Shelly.GetDeviceInfo"}`))
	// Anything else is challenged as a websocket frame is.
	var resp struct {
		Error shellyws.Error `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(d.call(t, `{"id":2,"method":"Test.Echo","params":{"a":1}}`)), &resp))
	require.Equal(t, 401, resp.Error.Code)
	m := challengeMsgRE.FindStringSubmatch(resp.Error.Message)
	require.NotNil(t, m, resp.Error.Message)
	nonce := m[1]

	assert.Equal(t, `{"id":3,"src":"`+testDeviceID+`","dst":"unknown","result":{"a":1}}`,
		d.call(t, `{"id":3,"method":"Test.Echo","params":{"a":1},"auth":`+authObject(nonce, 1, "c1")+`}`))
	// A replayed nc is refused.
	got := d.call(t, `{"id":4,"method":"Test.Echo","params":{"a":1},"auth":`+authObject(nonce, 1, "c1")+`}`)
	assert.Contains(t, got, `"code":401`)
}

func TestUDPBoundedConcurrency(t *testing.T) {
	const limit = 2
	var running, most atomic.Int32
	release := make(chan struct{})
	m := echoMux()
	m.HandleFunc("Test.Block", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			old := most.Load()
			if n <= old || most.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	d := startUDP(t, newUDPComponent(t, m), shellyws.WithUDPMaxInFlight(limit))
	for i := range 5 {
		d.send(t, fmt.Sprintf(`{"id":%d,"method":"Test.Block"}`, i))
	}
	require.Eventually(t, func() bool { return running.Load() == limit }, waitTimeout, time.Millisecond)
	close(release)
	for range 5 {
		assert.Contains(t, d.read(t), `"result":null`)
	}
	assert.Equal(t, int32(limit), most.Load(), "never more than the bound at once")
}

func TestUDPNotify(t *testing.T) {
	c := newUDPComponent(t, echoMux())
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer sink.Close()
	startUDP(t, c, shellyws.WithUDPNotify(sink.LocalAddr()))
	// ServeUDP subscribes once it runs: publish until a datagram comes.
	buf := make([]byte, 2048)
	var got string
	for deadline := time.Now().Add(waitTimeout); got == "" && time.Now().Before(deadline); {
		require.NoError(t, c.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}}))
		require.NoError(t, sink.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		if n, _, err := sink.ReadFrom(buf); err == nil {
			got = string(buf[:n])
		}
	}
	assert.Regexp(t, `^\{"src":"`+testDeviceID+`","method":"NotifyStatus","params":\{"ts":[0-9.]+,"switch:0":\{"output":true\}\}\}$`, got)
}

func TestUDPServeEndsWithReadError(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	err = shellyws.ServeUDP(context.Background(), conn, newUDPComponent(t, echoMux()))
	assert.True(t, errors.Is(err, net.ErrClosed), "%v", err)
}

func TestServeFrame(t *testing.T) {
	m := echoMux()
	var order []string
	m.HandleFunc("Test.After", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		require.True(t, shellyws.AfterReply(ctx, func() { order = append(order, "after") }))
		return nil, nil
	})
	c := newUDPComponent(t, m)
	ctx := testCtx(t)

	t.Run("answered with dst", func(t *testing.T) {
		var dst, resp string
		require.NoError(t, c.ServeFrame(ctx, shellyws.ChannelMQTT, []byte(`{"id":1,"src":"ha/x","method":"Test.Channel"}`),
			func(d string, r []byte) { dst, resp = d, string(r) }))
		assert.Equal(t, "ha/x", dst)
		assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","dst":"ha/x","result":"mqtt"}`, resp)
	})
	t.Run("no src: no dst", func(t *testing.T) {
		var dst, resp string
		require.NoError(t, c.ServeFrame(ctx, shellyws.ChannelMQTT, []byte(`{"id":1,"method":"Test.Channel"}`),
			func(d string, r []byte) { dst, resp = d, string(r) }))
		assert.Equal(t, "", dst)
		assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","result":"mqtt"}`, resp)
	})
	t.Run("AfterReply runs after the reply", func(t *testing.T) {
		order = nil
		require.NoError(t, c.ServeFrame(ctx, shellyws.ChannelMQTT, []byte(`{"id":1,"src":"s","method":"Test.After"}`),
			func(string, []byte) { order = append(order, "reply") }))
		assert.Equal(t, []string{"reply", "after"}, order)
	})
	t.Run("no id: no reply", func(t *testing.T) {
		require.NoError(t, c.ServeFrame(ctx, shellyws.ChannelMQTT, []byte(`{"src":"s","method":"Test.Echo"}`),
			func(string, []byte) { t.Error("a request without id was answered") }))
	})
	t.Run("garbage dropped with an error", func(t *testing.T) {
		err := c.ServeFrame(ctx, shellyws.ChannelMQTT, []byte(`nope`), func(string, []byte) { t.Error("answered garbage") })
		assert.Error(t, err)
	})
	t.Run("channels that authenticate are refused", func(t *testing.T) {
		for _, ch := range []shellyws.Channel{shellyws.ChannelUDP, shellyws.ChannelHTTP, shellyws.ChannelInboundWebsocket, 0} {
			err := c.ServeFrame(ctx, ch, []byte(`{"id":1,"method":"Test.Echo"}`), func(string, []byte) { t.Error("answered") })
			assert.ErrorIs(t, err, shellyws.ErrNotExempt, ch.String())
		}
	})
}

func TestSubscribe(t *testing.T) {
	c := newUDPComponent(t, echoMux())
	got := make(chan string, 4)
	unsubscribe := c.Subscribe(func(method string, params json.RawMessage) { got <- method + " " + string(params) })
	require.NoError(t, c.NotifyEvent(shellyws.Event{Component: "input:0", Event: "single_push"}))
	select {
	case s := <-got:
		assert.Regexp(t, `^NotifyEvent \{"ts":[0-9.]+,"events":\[\{"component":"input:0","event":"single_push","ts":[0-9.]+\}\]\}$`, s)
	case <-time.After(waitTimeout):
		t.Fatal("no notification")
	}
	unsubscribe()
	require.NoError(t, c.NotifyStatus(map[string]any{"sys": map[string]any{"x": 1}}))
	assert.Empty(t, got, "nothing after unsubscribe")
}

func TestChannelStrings(t *testing.T) {
	assert.Equal(t, "udp", shellyws.ChannelUDP.String())
	assert.Equal(t, "mqtt", shellyws.ChannelMQTT.String())
}
