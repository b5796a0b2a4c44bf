//go:build linux

package main

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// httpServe serves websockets on ln until ctx ends, each with handle.
func httpServe(ctx context.Context, ln net.Listener, handle func(*websocket.Conn)) int {
	srv := &http.Server{ReadHeaderTimeout: 30 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(c)
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	_ = srv.Serve(ln)
	return 0
}
