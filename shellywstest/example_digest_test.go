package shellywstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A test calls a device whose password is set: over HTTP with
// DigestTransport, as curl --digest -u admin:PASSWORD does, and over the
// inbound websocket by answering the 401 challenge with FrameAuth.
func ExampleDigestTransport() {
	const id = "shellyplus1pm-c049ef8cf4e0"
	dev, err := shellyws.New(id, shellyws.WithAuthStore(
		shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(id, "secret"))))
	if err != nil {
		fmt.Println(err)
		return
	}
	h := shellyws.NewHandler(dev)
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()
	defer h.Close()

	// HTTP: the transport answers the challenge and keeps the nonce.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: &shellywstest.DigestTransport{Password: "secret", Base: tr}}
	resp, err := client.Get(srv.URL + "/rpc/Ws.GetStatus")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// Websocket: a request without auth gets a 401 whose message is the
	// challenge; the same request with FrameAuth's object goes through.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/rpc", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.CloseNow()
	roundTrip := func(frame map[string]any) (result json.RawMessage, rpcErr *shellyws.Error) {
		data, _ := json.Marshal(frame)
		if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
			return nil, &shellyws.Error{Code: -1, Message: err.Error()}
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			return nil, &shellyws.Error{Code: -1, Message: err.Error()}
		}
		var r struct {
			Result json.RawMessage `json:"result"`
			Error  *shellyws.Error `json:"error"`
		}
		_ = json.Unmarshal(data, &r)
		return r.Result, r.Error
	}
	req := map[string]any{"id": 1, "src": "test", "method": "Ws.GetStatus"}
	_, rpcErr := roundTrip(req)
	fmt.Println(rpcErr.Code)
	ch, err := shellywstest.ParseChallenge(rpcErr.Message)
	if err != nil {
		fmt.Println(err)
		return
	}
	req["auth"] = shellywstest.FrameAuth(ch, "secret", 1)
	result, rpcErr := roundTrip(req)
	fmt.Println(string(result), rpcErr == nil)
	_ = conn.Close(websocket.StatusNormalClosure, "")
	// Output:
	// 200 {"connected":false}
	// 401
	// {"connected":false} true
}
