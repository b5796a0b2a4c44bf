package shellyws

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the web server in front of a Handler (NewHTTPServer,
// LimitListener). A device's web server has a handful of sockets and
// closes what it does not use; these keep a hostile or broken client from
// holding connections, file descriptors or memory for longer.
const (
	// defaultHTTPReadTimeout bounds reading one request, header and body:
	// a client that sends them slowly is cut off after it.
	defaultHTTPReadTimeout = 10 * time.Second
	// defaultHTTPIdleTimeout closes a keep-alive connection that sends no
	// next request for this long, and one that sends no first request.
	defaultHTTPIdleTimeout = 10 * time.Second
	// defaultHTTPWriteTimeout bounds a request from its header to the end
	// of its answer, a slow handler included.
	defaultHTTPWriteTimeout = 30 * time.Second
)

// DefaultMaxConns is how many connections one device holds open at once,
// the limit to give LimitListener: 8 websocket clients (WithMaxClients'
// default) plus 8 HTTP connections.
const DefaultMaxConns = 16

// maxHeaderBytes bounds a request's header: room for the longest query
// string a Handler takes (defaultMaxRequestSize), so that its own 414
// answers an overlong one.
const maxHeaderBytes = defaultMaxRequestSize + 8<<10

// NewHTTPServer returns the http.Server to put in front of h, a Handler,
// with a device's limits: 10 s to read a request's header and body, 10 s
// for a connection waiting for its next (or first) request, 30 s for an
// answer, and a header of at most the Handler's default request size
// (64 KiB) plus 8 KiB. Websocket
// clients are hijacked, so these timeouts do not apply to them (the
// Handler bounds them: WithMaxClients, WithAuthTimeout, WithPing).
// Serve it on LimitListener to bound the connections too:
//
//	ln, err := net.Listen("tcp", ":80")
//	...
//	srv := shellyws.NewHTTPServer(h)
//	go srv.Serve(shellyws.LimitListener(ln, shellyws.DefaultMaxConns))
//	...
//	srv.Shutdown(ctx) // then h.Close() for the websocket clients
//
// The fields may be changed before Serve; the defaults are the ones a
// device should keep.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: defaultHTTPReadTimeout,
		ReadTimeout:       defaultHTTPReadTimeout,
		WriteTimeout:      defaultHTTPWriteTimeout,
		IdleTimeout:       defaultHTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// LimitListener returns l holding at most n connections open at once
// (below 1: DefaultMaxConns), websocket clients included. A connection
// accepted beyond the limit is closed at once, with a reset, as a device
// out of sockets refuses it: it never waits in the process, never costs a
// file descriptor for longer than that, and the device answers again as
// soon as connections go (at the latest after the timeouts of
// NewHTTPServer). Closing the returned listener closes l.
func LimitListener(l net.Listener, n int) net.Listener {
	if n < 1 {
		n = DefaultMaxConns
	}
	return &limitListener{Listener: l, slots: make(chan struct{}, n)}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
}

// Accept returns the next connection there is room for; the ones beyond
// the limit are refused meanwhile.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset: no TIME_WAIT left behind
			}
			_ = c.Close()
		}
	}
}

// limitConn gives its slot back when it is closed, once.
type limitConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
