package shellyws_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
)

// A device serves the same RPC methods on its inbound channels: HTTP GET
// and POST on /rpc and a websocket on /rpc that also carries notifications
// once the client has sent a src.
func ExampleNewHandler() {
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0",
		shellyws.WithClock(func() time.Time { return time.Unix(1700000000, 0) }))
	if err != nil {
		panic(err)
	}
	h := shellyws.NewHandler(dev)
	srv := httptest.NewServer(h) // on 127.0.0.1; a device would use its own http.Server
	defer srv.Close()
	defer h.Close() // websocket clients are hijacked: Close them before the server
	client := srv.Client()

	show := func(resp *http.Response, err error) {
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(body))
	}
	show(client.Get(srv.URL + "/rpc/Ws.SetConfig?config=" + url.QueryEscape(`{"ssl_ca":"*"}`)))
	show(client.Get(srv.URL + "/rpc/Ws.GetConfig"))
	show(client.Get(srv.URL + "/rpc/Nope.Nothing"))
	show(client.Post(srv.URL+"/rpc", "application/json",
		strings.NewReader(`{"id":1,"src":"user_1","method":"Ws.GetStatus"}`)))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/rpc",
		&websocket.DialOptions{HTTPClient: client, Subprotocols: []string{shellyws.Subprotocol}})
	if err != nil {
		panic(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"id":2,"src":"user_1","method":"Ws.GetStatus"}`)); err != nil {
		panic(err)
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(msg))

	// user_1 sent a src: it now gets the device's notifications too.
	if err := dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}}); err != nil {
		panic(err)
	}
	_, msg, err = conn.Read(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(msg))
	conn.Close(websocket.StatusNormalClosure, "")

	// Output:
	// 200 {"restart_required":true}
	// 200 {"enable":false,"server":null,"ssl_ca":"*"}
	// 404 {"code":404,"message":"No handler for Nope.Nothing"}
	// 200 {"id":1,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":{"connected":false}}
	// {"id":2,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":{"connected":false}}
	// {"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","method":"NotifyStatus","params":{"ts":1700000000.00,"switch:0":{"output":true}}}
}
