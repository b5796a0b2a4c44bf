package shellywstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"github.com/shellyws/shellyws/shellywstest"
)

// A fake device built from a bare coder/websocket client dials the server,
// sends its full status and answers one call.
func Example() {
	srv := shellywstest.NewUnstartedServer(shellywstest.WithPath("/shelly"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The device: dial, send NotifyFullStatus first, answer requests.
	dev, _, err := websocket.Dial(ctx, srv.URL(), &websocket.DialOptions{Subprotocols: []string{"json-rpc"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	deviceDone := make(chan struct{})
	go func() {
		defer close(deviceDone)
		defer dev.CloseNow()
		const id = "shellyplus1pm-c049ef8cf4e0"
		full := `{"src":"` + id + `","dst":"ws","method":"NotifyFullStatus",` +
			`"params":{"ts":1700000000.00,"sys":{"mac":"C049EF8CF4E0"},"ws":{"connected":true}}}`
		if dev.Write(ctx, websocket.MessageText, []byte(full)) != nil {
			return
		}
		for {
			_, data, err := dev.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				ID  json.RawMessage `json:"id"`
				Src string          `json:"src"`
			}
			_ = json.Unmarshal(data, &req)
			resp := `{"id":` + string(req.ID) + `,"src":"` + id + `","dst":"` + req.Src + `",` +
				`"result":{"id":"` + id + `","mac":"C049EF8CF4E0","gen":2}}`
			if dev.Write(ctx, websocket.MessageText, []byte(resp)) != nil {
				return
			}
		}
	}()

	// The test: accept the device, check its full status, call it.
	conn, err := srv.Accept(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fs, err := conn.ExpectFullStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(conn.Src(), conn.Subprotocol(), fs.Method, fs.TS, string(fs.Status["sys"]))

	var info struct {
		ID  string `json:"id"`
		Gen int    `json:"gen"`
	}
	if err := conn.Call(ctx, "Shelly.GetDeviceInfo", nil, &info); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.ID, info.Gen)

	_ = conn.Close(websocket.StatusNormalClosure, "bye")
	<-deviceDone
	// Output:
	// shellyplus1pm-c049ef8cf4e0 json-rpc NotifyFullStatus 1.7e+09 {"mac":"C049EF8CF4E0"}
	// shellyplus1pm-c049ef8cf4e0 2
}
