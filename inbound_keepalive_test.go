package shellyws_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// An inbound websocket client gets the outbound keepalive (protocol
// section 1): one that pings, or talks, is sent no ping; one that goes
// silent and answers nothing is dropped within interval + timeout.
func TestInboundClientKeepalive(t *testing.T) {
	const iv = 100 * time.Millisecond
	t.Run("a client that pings gets none", func(t *testing.T) {
		d := newInboundDevice(t, nil, shellyws.WithPing(iv, iv/2))
		var devicePings atomic.Int32
		conn := d.dial(t, &websocket.DialOptions{
			Subprotocols:   []string{shellyws.Subprotocol},
			OnPingReceived: func(context.Context, []byte) bool { devicePings.Add(1); return true },
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reads := make(chan error, 1)
		go func() { _, _, err := conn.Read(ctx); reads <- err }() // answers the device's pings, if any
		deadline := time.Now().Add(4 * iv)
		for time.Now().Before(deadline) {
			pctx, pcancel := context.WithTimeout(ctx, waitTimeout)
			require.NoError(t, conn.Ping(pctx))
			pcancel()
			select {
			case <-time.After(iv / 3): // the client's own schedule
			case err := <-reads:
				t.Fatal(err)
			}
		}
		assert.Zero(t, devicePings.Load(), "the device pinged a client that pings it")
		cancel()
		<-reads
	})
	t.Run("a silent client that answers nothing is dropped", func(t *testing.T) {
		d := newInboundDevice(t, nil, shellyws.WithPing(iv, iv/2))
		c, err := net.Dial("tcp", strings.TrimPrefix(d.srv.URL, "http://"))
		require.NoError(t, err)
		defer c.Close()
		var key [16]byte
		rand.Read(key[:])
		_, err = io.WriteString(c, "GET /rpc HTTP/1.1\r\nHost: device\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(key[:])+"\r\nSec-WebSocket-Version: 13\r\n"+
			"Sec-WebSocket-Protocol: json-rpc\r\n\r\n")
		require.NoError(t, err)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		start := time.Now()
		c.SetReadDeadline(start.Add(waitTimeout))
		var pings int
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				break // dropped: the socket ended
			}
			if h[0]&0x0f == 0x9 {
				pings++
			}
			if _, err := io.CopyN(io.Discard, br, int64(h[1]&0x7f)); err != nil {
				break
			}
		}
		took := time.Since(start)
		assert.Equal(t, 1, pings, "one ping, unanswered")
		assert.GreaterOrEqual(t, took, iv)
		assert.Less(t, took, 2*iv+time.Second, "dropped within interval + timeout (and a scheduling margin)")
	})
}
