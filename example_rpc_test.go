package shellyws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shellyws/shellyws"
)

// A router answers methods in any spelling, lists what it serves and
// answers unknown methods with the firmware's 404.
func ExampleMux() {
	mux := shellyws.NewMux()
	mux.HandleFunc("Switch.GetStatus", func(ctx context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			ID int `json:"id"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err // already a -103 *Error
		}
		if p.ID != 0 {
			return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", p.ID)
		}
		return map[string]any{"id": 0, "output": true}, nil
	})

	call := func(method, params string) {
		req := &shellyws.Request{ID: json.RawMessage(`1`), Method: method}
		if params != "" {
			req.Params = json.RawMessage(params)
		}
		res, err := mux.Dispatch(context.Background(), req)
		if err != nil {
			e := shellyws.AsError(err)
			fmt.Printf("%s: error %d %s\n", method, e.Code, e.Message)
			return
		}
		out, _ := json.Marshal(res)
		fmt.Printf("%s: %s\n", method, out)
	}

	call("switch.getstatus", `{"id":0}`)
	call("Switch.GetStatus", `{"id":7}`)
	call("Switch.GetStatus", `{"id":"zero"}`)
	call("shelly.listmethods", "")
	call("Nope.Nothing", "")
	// Output:
	// switch.getstatus: {"id":0,"output":true}
	// Switch.GetStatus: error -105 Bad id=7
	// Switch.GetStatus: error -103 Invalid params: 'id' has the wrong type (string)
	// shelly.listmethods: {"methods":["Shelly.ListMethods","Switch.GetStatus"]}
	// Nope.Nothing: error 404 No handler for Nope.Nothing
}

// A custom Dispatcher can wrap a router, here to refuse everything but
// read-only methods, as a monitoring-only device might.
func ExampleDispatcherFunc() {
	mux := shellyws.NewMux()
	mux.HandleFunc("Sys.GetStatus", func(context.Context, *shellyws.Request) (any, error) {
		return map[string]any{"uptime": 522703}, nil
	})
	mux.HandleFunc("Shelly.Reboot", func(context.Context, *shellyws.Request) (any, error) {
		return nil, nil
	})

	readOnly := shellyws.DispatcherFunc(func(ctx context.Context, req *shellyws.Request) (any, error) {
		_, name, _ := strings.Cut(req.Method, ".")
		if !strings.HasPrefix(strings.ToLower(name), "get") && !strings.EqualFold(name, "ListMethods") {
			return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "%s is disabled", req.Method)
		}
		return mux.Dispatch(ctx, req)
	})

	for _, method := range []string{"sys.getstatus", "Shelly.Reboot"} {
		res, err := readOnly.Dispatch(context.Background(), &shellyws.Request{Method: method})
		var rpcErr *shellyws.Error
		if errors.As(err, &rpcErr) {
			fmt.Printf("%s: error %d %s\n", method, rpcErr.Code, rpcErr.Message)
			continue
		}
		out, _ := json.Marshal(res)
		fmt.Printf("%s: %s\n", method, out)
	}
	// Output:
	// sys.getstatus: {"uptime":522703}
	// Shelly.Reboot: error -109 Shelly.Reboot is disabled
}

// Ws.SetConfig merges a partial config into the stored one; an invalid
// request leaves the stored config as it was.
func ExampleMergeConfig() {
	store := shellyws.NewMemoryStore(shellyws.DefaultConfig())

	setConfig := func(params string) {
		stored, _ := store.Load()
		merged, err := shellyws.MergeConfig(stored, json.RawMessage(params))
		if err != nil {
			fmt.Println("rejected:", shellyws.AsError(err).Code)
		} else {
			_ = store.Save(merged)
			fmt.Println(`result: {"restart_required":true}`)
		}
		now, _ := store.Load()
		out, _ := json.Marshal(now)
		fmt.Println("stored:", string(out))
	}

	// What Home Assistant sends, then a typo, then Fleet Manager parking
	// the device.
	setConfig(`{"config":{"enable":true,"server":"ws://192.168.1.10:8123/api/shelly/ws","ssl_ca":"*"}}`)
	setConfig(`{"config":{"server":"http://192.168.1.10:8123/api/shelly/ws"}}`)
	setConfig(`{"config":{"server":"#","enable":false}}`)
	// Output:
	// result: {"restart_required":true}
	// stored: {"enable":true,"server":"ws://192.168.1.10:8123/api/shelly/ws","ssl_ca":"*"}
	// rejected: -103
	// stored: {"enable":true,"server":"ws://192.168.1.10:8123/api/shelly/ws","ssl_ca":"*"}
	// result: {"restart_required":true}
	// stored: {"enable":false,"server":"#","ssl_ca":"*"}
}
