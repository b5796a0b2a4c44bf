// Command server is a minimal Outbound Websocket server: Shelly Gen2 devices
// (or the simulator) connect to it, it logs their notifications and keeps
// each device's status up to date, and a small HTTP API on loopback lets you
// read that status and call methods on the devices.
//
//	go run ./examples/server
//	go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly
//	curl -s http://127.0.0.1:8766/devices
//	curl -s -d '{"method":"Switch.Toggle","params":{"id":0}}' http://127.0.0.1:8766/devices/ID/call
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const usageText = `Usage: server [flags]

A minimal Shelly Gen2 Outbound Websocket server. Devices connect on any path
of -listen; the API on -http shows them and calls their methods:

  GET  /devices              devices seen: id, connected, remote address
  GET  /devices/{id}/status  last NotifyFullStatus with every NotifyStatus merged in
  POST /devices/{id}/call    {"method":"Switch.Toggle","params":{"id":0}}
                             answers with the device's response frame

Flags:
  -listen ADDR  where devices connect (default 127.0.0.1:8765); use
                0.0.0.0:8765 for real devices on your network, and set their
                server to ws://<this host>:8765/shelly
  -http ADDR    the API, loopback only: it has no authentication
                (default 127.0.0.1:8766)

Example, with the simulator:
  go run ./examples/server
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly
  curl -s http://127.0.0.1:8766/devices
  curl -s -d '{"method":"Switch.Toggle","params":{"id":0}}' \
      http://127.0.0.1:8766/devices/<id>/call
`

// shutdownTimeout bounds the graceful shutdown of the HTTP servers.
const shutdownTimeout = 5 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program, returning its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:8765", "")
	apiAddr := fs.String("http", "127.0.0.1:8766", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return 0
		}
		fmt.Fprintf(stderr, "server: %v\nRun 'server -h' for usage.\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "server: unexpected argument %q\nRun 'server -h' for usage.\n", fs.Arg(0))
		return 2
	}
	if err := checkLoopback(*apiAddr); err != nil {
		fmt.Fprintf(stderr, "server: -http %s: %v\n", *apiAddr, err)
		return 2
	}

	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
	hub := NewHub(logf)

	wsLn, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "server: -listen: %v\n", err)
		return 1
	}
	apiLn, err := net.Listen("tcp", *apiAddr)
	if err != nil {
		wsLn.Close()
		fmt.Fprintf(stderr, "server: -http: %v\n", err)
		return 1
	}
	wsSrv := &http.Server{Handler: hub, ReadHeaderTimeout: 10 * time.Second}
	apiSrv := &http.Server{Handler: hub.API(), ReadHeaderTimeout: 10 * time.Second}
	logf("devices connect to ws://%s/shelly (any path)", wsLn.Addr())
	logf("API on http://%s: curl -s http://%s/devices", apiLn.Addr(), apiLn.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- wsSrv.Serve(wsLn) }()
	go func() { errc <- apiSrv.Serve(apiLn) }()

	status := 0
	select {
	case <-ctx.Done():
		logf("shutting down")
	case err := <-errc:
		fmt.Fprintf(stderr, "server: %v\n", err)
		status = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = apiSrv.Shutdown(sctx)
	_ = wsSrv.Shutdown(sctx) // stops accepting; hijacked websockets are the hub's
	hub.Close()
	return status
}

// checkLoopback refuses an API address that is reachable from other hosts.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("the API has no authentication; give a loopback address such as 127.0.0.1:8766")
}
