//go:build unix

package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/shellywstest"
)

// dialState tries one TCP connection to addr: nil when it was accepted,
// syscall.ECONNREFUSED when refused, another error otherwise.
func dialState(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return syscall.ECONNREFUSED
		}
		return err
	}
	return c.Close()
}

// waitDial polls addr until dialState gives want (nil or ECONNREFUSED),
// bounded by waitTimeout.
func waitDial(t *testing.T, addr string, want error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var got error
	for time.Now().Before(deadline) {
		if got = dialState(addr); errors.Is(got, want) || (got == nil && want == nil) {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
	t.Fatalf("%s: want %v, still %v", addr, want, got)
}

// TestHTTPRebootRefusesDuringBoot: Shelly.Reboot over the -http channel
// answers, then drops the inbound websocket client and the outbound
// connection; the listener refuses connections during the boot and
// answers after it, while the server gets a fresh full status.
func TestHTTPRebootRefusesDuringBoot(t *testing.T) {
	const id = "shellyplus1pm-aabbccdd0010"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-http", "127.0.0.1:0", "-boot-time", "700ms")
	base := inboundURL(t, p)
	addr := strings.TrimPrefix(base, "http://")
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/rpc", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, wsjson.Write(ctx, ws, map[string]any{"id": 1, "src": "hass", "method": "Ws.GetStatus"}))
	var resp map[string]any
	require.NoError(t, wsjson.Read(ctx, ws, &resp))
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()

	r := httpDo(t, http.MethodGet, base+"/rpc/Shelly.Reboot?delay_ms=0", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "null", r.body)

	err = <-readErr // bounded by ctx
	require.NoError(t, ctx.Err(), "the inbound websocket client stayed connected")
	assert.Equal(t, websocket.StatusCode(-1), websocket.CloseStatus(err), "dropped without a close frame: %v", err)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the outbound connection stayed up")
	}

	waitDial(t, addr, syscall.ECONNREFUSED) // the web server is down while it boots
	waitDial(t, addr, nil)                  // and back after the boot time
	c2 := srv.AcceptT(t)
	fs := c2.ExpectFullStatusT(t)
	assert.Contains(t, string(fs.Status["sys"]), `"uptime":0`)
	r = httpDo(t, http.MethodGet, base+"/rpc/Ws.GetConfig", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"enable":true,"server":"`+srv.URL()+`","ssl_ca":"ca.pem"}`, r.body, "the stored config persists")
	p.stop(t)
}
