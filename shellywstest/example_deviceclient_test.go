package shellywstest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A test talks to a device's own websocket, ws://<addr>/rpc, with the
// device's password: DeviceClient answers the digest challenge, and after
// its first call the device's notifications come to it too. In a test,
// DialDevice(t, url, ...) closes the client when the test ends.
func ExampleDialDeviceContext() {
	const id = "shellyplus1pm-c049ef8cf4e0"
	dev, err := shellyws.New(id, shellyws.WithAuthStore(
		shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(id, "secret"))))
	if err != nil {
		fmt.Println(err)
		return
	}
	h := shellyws.NewHandler(dev)
	web := httptest.NewServer(h) // the device's web server, on 127.0.0.1
	defer web.Close()
	defer h.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(web.URL, "http") + "/rpc"
	client, err := shellywstest.DialDeviceContext(ctx, url, shellywstest.WithPassword("secret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close(websocket.StatusNormalClosure, "")

	var st shellyws.Status
	err = client.Call(ctx, "Ws.GetStatus", nil, &st)
	fmt.Println(st.Connected, err)

	_ = dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}})
	delta, err := client.ExpectStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	sw, err := shellywstest.Decode[map[string]any](delta.Changes["switch:0"])
	fmt.Println(delta.Dst, sw["output"], err)
	// Output:
	// false <nil>
	// shellywstest true <nil>
}
