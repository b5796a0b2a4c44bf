package shellyws_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/shellyws/shellyws"
)

// A device's web server: the Handler behind NewHTTPServer's timeouts, on a
// LimitListener holding at most DefaultMaxConns connections, as a device
// with its handful of sockets would serve it.
func ExampleNewHTTPServer() {
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0")
	if err != nil {
		panic(err)
	}
	h := shellyws.NewHandler(dev)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a device: ":80"
	if err != nil {
		panic(err)
	}
	srv := shellyws.NewHTTPServer(h)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(shellyws.LimitListener(ln, shellyws.DefaultMaxConns)) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + ln.Addr().String() + "/rpc/Ws.GetConfig")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // HTTP first: no new connections
	h.Close()             // then the websocket clients, which Shutdown does not close
	fmt.Println(<-served)
	// Output:
	// 200 {"enable":false,"server":null,"ssl_ca":"ca.pem"}
	// http: Server closed
}
