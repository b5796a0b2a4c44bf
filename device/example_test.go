package device_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// A simulated Plus 1PM connects to a test server, which toggles its relay
// and reads the NotifyStatus that follows.
func Example() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server
	model, err := profile.Builtin("plus1pm-gen2")
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := device.New(device.Options{Model: model, ID: "shellyplus1pm-c049ef8cf4e0", Store: shellyws.NewMemoryStore(cfg)})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { stop(); <-done }()

	conn, err := srv.Accept(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	full, err := conn.ExpectFullStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(full.Src, string(full.Status["ws"]))

	var res struct {
		WasOn bool `json:"was_on"`
	}
	if err := conn.Call(ctx, "Switch.Toggle", map[string]int{"id": 0}, &res); err != nil {
		fmt.Println(err)
		return
	}
	delta, err := conn.ExpectStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.WasOn, string(delta.Changes["switch:0"]))
	// Output:
	// shellyplus1pm-c049ef8cf4e0 {"connected":true}
	// false {"id":0,"output":true,"source":"WS_in"}
}
