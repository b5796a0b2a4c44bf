package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
)

// httpShutdownTimeout bounds the graceful shutdown of the inbound HTTP
// servers; requests still running after it are cut off.
const httpShutdownTimeout = 3 * time.Second

// deviceHTTPAddr is where device i of a fleet listens: PORT+i, or a free
// port of its own for port 0. addr passed checkPortRange.
func deviceHTTPAddr(addr string, i int) string {
	p := httpPort(addr)
	if p == 0 {
		return addr
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, strconv.Itoa(p+i))
}

// httpPort is the port of an address that passed checkPortRange.
func httpPort(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return p
}

// inbound is one device's web server: shellyws.Handler, the device's
// inbound channels, on shellyws.NewHTTPServer with its limits, on a
// shellyws.LimitListener. It stops listening while the device
// is down (rebooting or asleep) and listens again on the same address when
// it is up.
type inbound struct {
	addr    string // the bound address, port resolved; kept while down
	srv     *http.Server
	handler *shellyws.Handler
	log     *slog.Logger

	mu     sync.Mutex
	ln     net.Listener          // nil while the device is down
	served chan error            // the current Serve's result
	conns  map[net.Conn]struct{} // open HTTP connections, dropped by down
	closed bool
}

// listenError is an -http address that could not be listened on; bad is
// true when the address itself is wrong (unknown host, not an address of
// this machine) rather than busy or forbidden.
type listenError struct {
	addr string
	err  error
	bad  bool
}

func (e *listenError) Error() string {
	return fmt.Sprintf("-http %s: %v", e.addr, e.err)
}

// serveInbound listens on addr and serves the inbound channels of d there
// until close. Requests over HTTP (GET and POST /rpc/<Method>, POST /rpc)
// may also call the simulator's control method Sim.Input; the outbound
// connection never can.
func serveInbound(addr string, d *device.Device, logger *slog.Logger) (*inbound, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var dnsErr *net.DNSError
		bad := errors.As(err, &dnsErr) || errors.Is(err, syscall.EADDRNOTAVAIL)
		return nil, &listenError{addr: addr, err: err, bad: bad}
	}
	h := shellyws.NewHandler(d.Component())
	in := &inbound{
		addr:    ln.Addr().String(),
		handler: h,
		log:     logger,
		conns:   map[net.Conn]struct{}{},
	}
	// A device's limits: idle and slow clients closed within 10 s, at
	// most shellyws.DefaultMaxConns connections (see serveLocked).
	in.srv = shellyws.NewHTTPServer(simControl(h))
	in.srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	in.srv.ConnState = in.track
	in.mu.Lock()
	in.serveLocked(ln)
	in.mu.Unlock()
	return in, nil
}

// serveLocked serves on ln, holding at most shellyws.DefaultMaxConns
// connections (websocket clients included), as a device with its handful
// of sockets; more are refused at once.
func (in *inbound) serveLocked(ln net.Listener) {
	ln = shellyws.LimitListener(ln, shellyws.DefaultMaxConns)
	in.ln = ln
	served := make(chan error, 1)
	in.served = served
	go func() { served <- in.srv.Serve(ln) }()
}

// track keeps the open HTTP connections, so that down can drop them;
// websocket clients are hijacked and dropped by the library.
func (in *inbound) track(c net.Conn, st http.ConnState) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch st {
	case http.StateNew:
		in.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(in.conns, c)
	}
}

// down stops listening and drops every HTTP connection, as a device that
// reboots or falls asleep does: connections are refused until up.
func (in *inbound) down() {
	in.mu.Lock()
	ln, served := in.ln, in.served
	if ln == nil || in.closed {
		in.mu.Unlock()
		return
	}
	in.ln = nil
	in.mu.Unlock()
	// Serve takes the lock in track for a new connection: wait unlocked.
	_ = ln.Close()
	<-served // Serve ends with the listener's error
	in.mu.Lock()
	defer in.mu.Unlock()
	for c := range in.conns {
		_ = c.Close()
		delete(in.conns, c)
	}
}

// up listens again on the same address.
func (in *inbound) up() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ln != nil || in.closed {
		return
	}
	ln, err := net.Listen("tcp", in.addr)
	if err != nil {
		in.log.Error("simulator: -http: cannot listen again after the boot", "addr", in.addr, "err", err)
		return
	}
	in.serveLocked(ln)
}

// simControl lets the HTTP requests of next use the simulator's control
// methods. An inbound websocket client's requests run on the library's own
// context, so Sim.Input is not served there.
func simControl(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(device.WithSimControl(r.Context())))
	})
}

// Addr is the address the server listens on, its port resolved.
func (in *inbound) Addr() string { return in.addr }

// URL is the base URL a client on this machine uses: an unspecified host
// (every interface, "::" included: Go listens on both IPv4 and IPv6 there)
// is reached on 127.0.0.1.
func (in *inbound) URL() string {
	host, port, _ := net.SplitHostPort(in.Addr())
	if everyInterface(host) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// everyInterface reports whether host is unspecified (0.0.0.0, ::): a
// server there listens on every interface.
func everyInterface(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// where is URL, and says so when the server listens on every interface.
func (in *inbound) where() string {
	host, _, _ := net.SplitHostPort(in.Addr())
	if everyInterface(host) {
		return in.URL() + " (every interface)"
	}
	return in.URL()
}

// close shuts the server down: no new connections, running HTTP requests
// get up to httpShutdownTimeout, then the Handler closes its websocket
// clients (status 1001), which Shutdown neither closes nor waits for, and
// waits for every handler it started.
func (in *inbound) close() error {
	in.mu.Lock()
	in.closed = true
	listening := in.ln != nil
	served := in.served
	in.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	err := in.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, in.srv.Close())
	}
	in.handler.Close()
	if listening {
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// powerHooks connect a device's OnDown and OnUp to its -http server, which
// starts after the device is built.
type powerHooks struct{ in atomic.Pointer[inbound] }

func (h *powerHooks) down() {
	if in := h.in.Load(); in != nil {
		in.down()
	}
}

func (h *powerHooks) up() {
	if in := h.in.Load(); in != nil {
		in.up()
	}
}

// closeAll closes servers concurrently, so a fleet shuts down in one
// timeout, not one per device.
func closeAll(servers []*inbound) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, in := range servers {
		wg.Go(func() { errs[i] = in.close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
