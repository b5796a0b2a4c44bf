package evws

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/shellyws/shellyws/internal/testkit"
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
				testkit.AcceptUpgrade(c, nil)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				br, err := testkit.AcceptUpgrade(c, nil)
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

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(fin bool, op opcode, payload []byte) []byte {
	return append(testkit.FrameHeader(fin, byte(op), uint64(len(payload))), payload...)
}

// within fails the test unless cond holds within waitTimeout.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, time.Millisecond, what)
}
