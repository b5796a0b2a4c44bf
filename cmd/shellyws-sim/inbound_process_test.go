//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// inboundLineRe finds the -http server's URL of a single device in the
// simulator's output, and inboundOfRe those of a fleet on port 0.
var (
	inboundLineRe = regexp.MustCompile(`simulator: inbound HTTP on (http://[0-9.]+:[0-9]+)`)
	inboundOfRe   = regexp.MustCompile(`simulator: inbound HTTP of (\S+) on (http://[0-9.]+:[0-9]+)`)
)

// inboundURL waits for the line announcing the -http server and the curl
// line after it, and returns the server's URL.
func inboundURL(t *testing.T, p *proc) string {
	t.Helper()
	p.out.waitFor(t, "/rpc/Ws.GetConfig'\n")
	m := inboundLineRe.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, "no inbound HTTP line in:\n%s", p.out.String())
	assert.Contains(t, p.out.String(), "  curl '"+m[1]+"/rpc/Ws.GetConfig'\n", "a curl line to paste")
	return m[1]
}

// httpResponse is what an HTTP exchange returned.
type httpResponse struct {
	status int
	ctype  string
	body   string
}

// httpDo makes one request with a bounded wait; rawURL is sent as it is,
// query included (Go does not re-encode it).
func httpDo(t *testing.T, method, rawURL, body string) httpResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: string(data)}
}

// TestHTTPFlag drives a device's inbound channels the way the vendor's
// documentation of the Ws component does with curl, while the device is
// connected to its server, then stops it with SIGTERM.
func TestHTTPFlag(t *testing.T) {
	const id = "shellyplus1pm-aabbccddeeff"
	srv := shellywstest.NewServer(t, shellywstest.WithPath("/shelly"))
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	assert.Regexp(t, `^http://127\.0\.0\.1:[1-9][0-9]*$`, base, "the bound port is printed, not 0")
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)

	// GET /rpc/Ws.GetConfig: the bare result.
	r := httpDo(t, http.MethodGet, base+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.ctype, "application/json")
	assert.JSONEq(t, `{"enable":true,"server":"`+srv.URL()+`","ssl_ca":"ca.pem"}`, r.body)

	// The documented HTTP GET form of Ws.SetConfig, raw JSON in the query.
	r = httpDo(t, http.MethodGet, base+`/rpc/Ws.SetConfig?config={"ssl_ca":"*"}`, "")
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, `{"restart_required":true}`, r.body)
	// The same device: its server hears of the change on the outbound
	// connection.
	delta := c.ExpectStatusT(t)
	assert.Contains(t, delta.Changes, "sys")
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "config_changed", ev.Events[0].Event)

	// POST /rpc with a whole frame: the whole response frame.
	r = httpDo(t, http.MethodPost, base+"/rpc", `{"id":1,"method":"Ws.GetStatus"}`)
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"id":1,"src":"`+id+`","result":{"connected":true}}`, r.body)

	r = httpDo(t, http.MethodPost, base+"/rpc", `{"id":2,"method":"Ws.GetConfig"}`)
	assert.JSONEq(t, `{"id":2,"src":"`+id+`","result":{"enable":true,"server":"`+srv.URL()+`","ssl_ca":"*"}}`, r.body,
		"Ws.SetConfig stored the new ssl_ca")

	// GET /shelly: the device info.
	r = httpDo(t, http.MethodGet, base+"/shelly", "")
	assert.Equal(t, http.StatusOK, r.status)
	var info device.DeviceInfo
	require.NoError(t, json.Unmarshal([]byte(r.body), &info), r.body)
	assert.Equal(t, id, info.ID)
	assert.Equal(t, "AABBCCDDEEFF", info.MAC)
	assert.Equal(t, "SNSW-001P16EU", info.Model, "the default profile, plus1pm-gen2")
	assert.Equal(t, 2, info.Gen)

	// An unknown method is answered as the firmware does.
	r = httpDo(t, http.MethodGet, base+"/rpc/No.Such", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.JSONEq(t, `{"code":404,"message":"No handler for No.Such"}`, r.body)

	// An inbound websocket client, still open at SIGTERM, is closed with
	// 1001 too.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/rpc", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": 7, "src": "cli", "method": "Ws.GetStatus"}))
	var resp map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &resp))
	assert.Equal(t, map[string]any{"id": 7.0, "src": id, "dst": "cli", "result": map[string]any{"connected": true}}, resp)

	// The client reads on, as a real one does, so that it answers the
	// close handshake at once.
	readErr := make(chan error, 1)
	go func() {
		_, _, err := ws.Read(ctx)
		readErr <- err
	}()

	p.out.waitFor(t, "<- Shelly.GetDeviceInfo")
	p.stop(t)
	err = <-readErr // bounded by ctx
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "inbound client closed cleanly: %v", err)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the server never saw the connection end")
	}
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(c.Err()))

	// The port is closed with the process.
	_, err = net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	assert.Error(t, err, "the -http port is closed after exit")
}

// TestHTTPFlagDisconnected checks that the inbound channels report the
// outbound connection as it is: a device whose server is down says
// "connected": false.
func TestHTTPFlagDisconnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "ws://" + ln.Addr().String() + "/shelly"
	require.NoError(t, ln.Close())

	p := startSimulator(t, "-server", closed, "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	p.out.waitFor(t, "dial failed")
	r := httpDo(t, http.MethodGet, base+"/rpc/Ws.GetStatus", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"connected":false}`, r.body)

	r = httpDo(t, http.MethodGet, base+"/rpc/Shelly.GetStatus", "")
	var status map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.body), &status), r.body)
	assert.JSONEq(t, `{"connected":false}`, string(status["ws"]))
	p.stop(t)
}

// TestHTTPFlagDevices gives every device of a fleet a web server of its own.
func TestHTTPFlagDevices(t *testing.T) {
	const base = "shellyplus1pm-c0ffee000010"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-devices", "2", "-id", base, "-http", "127.0.0.1:0")
	p.out.waitFor(t, "simulator: each serves")
	m := inboundOfRe.FindAllStringSubmatch(p.out.String(), -1)
	require.Len(t, m, 2, p.out.String())
	for i, sub := range m {
		assert.Equal(t, device.DeriveID(base, i), sub[1])
		r := httpDo(t, http.MethodGet, sub[2]+"/shelly", "")
		var info device.DeviceInfo
		require.NoError(t, json.Unmarshal([]byte(r.body), &info), r.body)
		assert.Equal(t, sub[1], info.ID, "the device behind %s", sub[2])
	}
	assert.NotEqual(t, m[0][2], m[1][2])
	for range 2 {
		srv.AcceptT(t).ExpectFullStatusT(t)
	}
	p.stop(t)
}

func TestHTTPFlagListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	for _, tc := range []struct {
		addr string
		code int
		msg  string
	}{
		{busy.Addr().String(), 1, "address already in use"},
		// TEST-NET-1 (RFC 5737): an address of no machine here.
		{"192.0.2.1:8080", 2, "-http 192.0.2.1:8080"},
	} {
		p := startSimulator(t, "-server", "ws://127.0.0.1:1/", "-http", tc.addr)
		assert.Equal(t, tc.code, p.exitCode(t, waitTimeout), tc.addr)
		assert.Contains(t, p.out.String(), tc.msg)
	}
}

// TestInboundBoundedUnderHostileClients: the -http server holds at most
// shellyws.DefaultMaxConns connections per device, refuses the rest at
// once, closes a keep-alive connection left idle within 10 s, and answers
// GET /shelly within 1 s once the attacker's connections are gone.
func TestInboundBoundedUnderHostileClients(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplus1pm-aabbccdd0031", "-http", "127.0.0.1:0")
	base := inboundURL(t, p)
	addr := strings.TrimPrefix(base, "http://")
	srv.AcceptT(t).ExpectFullStatusT(t)

	// A keep-alive connection that asks once, then idles.
	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()
	idleSince := time.Now()
	_, err = io.WriteString(idle, "GET /shelly HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err)
	resp.Body.Close()

	// A flood of connections that send nothing: the device keeps only a
	// handful and refuses the rest at once.
	const flood = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue // refused so fast that connect saw the reset
		}
		conns = append(conns, c)
	}
	var open atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			// A refused connection reads EOF or a reset at once.
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1) // still held by the device
			}
		})
	}
	wg.Wait()
	t.Logf("%d of %d connections held open", open.Load(), flood)
	assert.LessOrEqual(t, int(open.Load())+1, shellyws.DefaultMaxConns, "at most DefaultMaxConns per device, the idle one included")

	// The attack stops: GET /shelly is answered within 1 s.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	stopped := time.Now()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/shelly", nil)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Second, 10*time.Millisecond, "GET /shelly within 1 s once the attack stopped")
	t.Logf("answered %v after the attack stopped", time.Since(stopped).Round(time.Millisecond))

	// The idle keep-alive connection is closed within 10 s of its answer.
	require.NoError(t, idle.SetReadDeadline(idleSince.Add(shellyws.NewHTTPServer(nil).IdleTimeout+3*time.Second)))
	_, err = io.Copy(io.Discard, idle)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "an idle keep-alive connection stays open past 10 s")
	t.Logf("idle connection closed after %v", time.Since(idleSince).Round(100*time.Millisecond))
	p.stop(t)
}
