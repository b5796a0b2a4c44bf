package evws

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every wait of a test.
const waitTimeout = 5 * time.Second

// mode is how a test's connections are read.
type mode struct {
	name      string
	goroutine bool
}

var modes = []mode{{"polled", false}, {"goroutine", true}}

// forModes runs f once per way of reading.
func forModes(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// options returns options for m with a poller of the test's own, which the
// test's cleanup waits on.
func (m mode) options(t *testing.T) *Options {
	o := &Options{Subprotocol: "json-rpc", Goroutine: m.goroutine, WriteTimeout: time.Second, CloseTimeout: time.Second}
	if !m.goroutine {
		p, err := NewPoller()
		require.NoError(t, err)
		o.Poller = p
		t.Cleanup(p.Wait)
	}
	return o
}

// recorder is a Handler that keeps what it is given.
type recorder struct {
	msgs      chan string
	closed    chan error
	closes    atomic.Int32
	onMessage func(c *Conn, data []byte)
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan string, 1024), closed: make(chan error, 4)}
}

func (r *recorder) Message(c *Conn, text bool, data []byte) {
	if r.onMessage != nil {
		r.onMessage(c, data)
	}
	r.msgs <- string(data)
}

func (r *recorder) Closed(c *Conn, err error) {
	r.closes.Add(1)
	r.closed <- err
}

func (r *recorder) message(t *testing.T) string {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("no message")
		return ""
	}
}

func (r *recorder) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Closed was not called")
		return nil
	}
}

// dial dials url, starts the connection with r and drops it at cleanup.
func dial(t *testing.T, url string, o *Options, r *recorder) *Conn {
	t.Helper()
	return dialTLS(t, url, nil, o, r)
}

// dialTLS is dial with a TLS configuration for wss://.
func dialTLS(t *testing.T, url string, tc *tls.Config, o *Options, r *recorder) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, tc, o)
	require.NoError(t, err)
	c.Start(r)
	t.Cleanup(func() {
		c.Drop()
		if r.closes.Load() == 0 {
			r.waitClosed(t)
		}
	})
	return c
}

// wsServer is a coder/websocket server that hands each accepted
// connection, with its request, to the test.
type wsServer struct {
	srv   *httptest.Server
	conns chan accepted
	quit  chan struct{}
}

type accepted struct {
	c *websocket.Conn
	r *http.Request
}

func newWSServer(t *testing.T, useTLS bool, opts *websocket.AcceptOptions) *wsServer {
	s := &wsServer{conns: make(chan accepted, 16), quit: make(chan struct{})}
	if opts == nil {
		opts = &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		select {
		case s.conns <- accepted{c, r}:
		case <-s.quit:
			return
		}
		select {
		case <-s.quit:
		case <-r.Context().Done():
		}
	})
	if useTLS {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		close(s.quit)
		s.srv.Close()
	})
	return s
}

func (s *wsServer) url() string {
	scheme := "ws://"
	if s.srv.TLS != nil {
		scheme = "wss://"
	}
	return scheme + s.srv.Listener.Addr().String() + "/shelly?token=s3cret"
}

// tlsConfig trusts the server's certificate.
func (s *wsServer) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return &tls.Config{RootCAs: pool, ServerName: "example.com"}
}

func (s *wsServer) accept(t *testing.T) accepted {
	t.Helper()
	select {
	case a := <-s.conns:
		return a
	case <-time.After(waitTimeout):
		t.Fatal("no connection accepted")
		return accepted{}
	}
}

// rawServer speaks websocket by hand, to send what coder/websocket would
// not. A nil handle keeps each connection without a goroutine.
type rawServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newRawServer(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if handle == nil {
				rawHandshake(c, nil)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				br, err := rawHandshake(c, nil)
				if err == nil {
					handle(c, br)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "ws://" + s.ln.Addr().String() + "/" }

// rawHandshake answers a client's upgrade, with extra bytes right behind
// the response.
func rawHandshake(c net.Conn, extra []byte) (*bufio.Reader, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + websocketGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: json-rpc\r\n\r\n"
	_, err = c.Write(append([]byte(resp), extra...))
	return br, err
}

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(fin bool, op opcode, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	var b []byte
	switch n := len(payload); {
	case n < 126:
		b = []byte{b0, byte(n)}
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16([]byte{b0, 126}, uint16(n))
	default:
		b = binary.BigEndian.AppendUint64([]byte{b0, 127}, uint64(n))
	}
	return append(b, payload...)
}

// readClientFrame reads one masked frame from the client.
func readClientFrame(br *bufio.Reader) (opcode, []byte, error) {
	var hb [14]byte
	if _, err := io.ReadFull(br, hb[:2]); err != nil {
		return 0, nil, err
	}
	need := 2
	switch hb[1] & 0x7f {
	case 126:
		need = 4
	case 127:
		need = 10
	}
	if hb[1]&0x80 == 0 {
		return 0, nil, errors.New("unmasked client frame")
	}
	need += 4
	if _, err := io.ReadFull(br, hb[2:need]); err != nil {
		return 0, nil, err
	}
	h, n := parseHeader(hb[:need])
	if n != need {
		return 0, nil, errors.New("bad header")
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, nil, err
	}
	mask(p, binary.LittleEndian.Uint32(hb[need-4:]))
	return h.op, p, nil
}

// readCloseCode reads client frames until a close and returns its code,
// -1 if the connection ended without one.
func readCloseCode(br *bufio.Reader) int {
	for {
		op, p, err := readClientFrame(br)
		if err != nil {
			return -1
		}
		if op == opClose {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// within fails the test unless cond holds within waitTimeout.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, time.Millisecond, what)
}
