package shellyws_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// serveLimited serves c's Handler with NewHTTPServer on LimitListener(n)
// on 127.0.0.1 and returns its address; cleanup shuts both down.
func serveLimited(t *testing.T, c *shellyws.Component, n int) (string, *shellyws.Handler) {
	t.Helper()
	h := shellyws.NewHandler(c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := shellyws.NewHTTPServer(h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(shellyws.LimitListener(ln, n)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		h.Close()
		assert.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	return ln.Addr().String(), h
}

// getShelly sends GET /shelly on a connection of its own and returns the
// status (the component in these tests has no device info: 404).
func getShelly(t *testing.T, addr string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/shelly", nil)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestNewHTTPServerHasADevicesLimits(t *testing.T) {
	h := http.NotFoundHandler()
	srv := shellyws.NewHTTPServer(h)
	assert.NotNil(t, srv.Handler)
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout, "IdleTimeout": srv.IdleTimeout} {
		assert.Positive(t, d, name)
		assert.LessOrEqual(t, d, 10*time.Second, name)
	}
	assert.Positive(t, srv.WriteTimeout)
	assert.Greater(t, srv.MaxHeaderBytes, defaultMaxRequestSize, "the Handler's own 414 answers an overlong query")
	assert.Less(t, srv.MaxHeaderBytes, http.DefaultMaxHeaderBytes)
	assert.Equal(t, 16, shellyws.DefaultMaxConns)
}

// TestLimitListenerRefusesBeyondTheLimit: connections beyond the limit are
// closed at once; the device keeps answering those it holds, and answers
// new ones as soon as the others go.
func TestLimitListenerRefusesBeyondTheLimit(t *testing.T) {
	c, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	addr, _ := serveLimited(t, c, 3)

	var held []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		held = append(held, conn)
	}
	// The held ones are served (one request each proves it was accepted).
	for _, conn := range held {
		_, err := io.WriteString(conn, "GET /shelly HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
	}
	// Beyond the limit: refused, many times over, without waiting.
	for range 50 {
		_, err := getShelly(t, addr)
		require.Error(t, err, "a fourth connection is refused")
	}
	// Once one goes, a new one is answered at once.
	held[0].Close()
	start := time.Now()
	require.Eventually(t, func() bool { _, err := getShelly(t, addr); return err == nil },
		time.Second, time.Millisecond, "GET /shelly answered within 1 s once a connection went")
	t.Logf("answered %v after a slot was freed", time.Since(start))
	for _, conn := range held[1:] {
		conn.Close()
	}
}

// TestHTTPServerClosesIdleAndSlowClients: with NewHTTPServer's limits, a
// connection that sends nothing, a keep-alive connection left idle, a
// header that never ends and a body trickled in are all closed within
// 10 s (plus scheduling); the device answers GET /shelly throughout. It
// runs in real time, about 10 s.
func TestHTTPServerClosesIdleAndSlowClients(t *testing.T) {
	c, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	addr, _ := serveLimited(t, c, 0)
	const bound = defaultHTTPIdleTimeout + 3*time.Second

	clients := map[string]func(net.Conn) error{
		"silent": func(net.Conn) error { return nil },
		"idle keep-alive": func(conn net.Conn) error {
			if _, err := io.WriteString(conn, "GET /shelly HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		},
		"header never ends": func(conn net.Conn) error {
			_, err := io.WriteString(conn, "GET /shelly HTTP/1.1\r\nHost: x\r\n")
			return err
		},
		"trickled body": func(conn net.Conn) error {
			_, err := io.WriteString(conn, "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
			return err
		},
	}
	var wg sync.WaitGroup
	for name, start := range clients {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if !assert.NoError(t, err, name) {
				return
			}
			defer conn.Close()
			begin := time.Now()
			if !assert.NoError(t, start(conn), name) {
				return
			}
			stopTrickle := make(chan struct{})
			defer close(stopTrickle)
			if name == "trickled body" {
				go func() {
					tick := time.NewTicker(500 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stopTrickle:
							return
						case <-tick.C:
							if _, err := io.WriteString(conn, " "); err != nil {
								return
							}
						}
					}
				}()
			}
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(bound)))
			_, err = io.Copy(io.Discard, conn) // ends when the device closes it
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: still open after %v", name, bound)
			t.Logf("%s: closed after %v", name, time.Since(begin).Round(100*time.Millisecond))
		})
	}
	_, err = getShelly(t, addr)
	require.NoError(t, err, "answered while they hang on")
	wg.Wait()
}
