package shellyws_test

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// Shelly.Reboot answers null and reboots once that answer is on the wire:
// the handler registers the reboot with AfterReply.
func ExampleAfterReply() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	cfg := shellyws.DefaultConfig()
	server := srv.URL()
	cfg.Enable, cfg.Server = true, &server

	mux := shellyws.NewMux()
	dev, err := shellyws.New("shellyplus1-c049ef8cf4e0", shellyws.WithDispatcher(mux),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)), shellywstest.FastBackoff(),
		shellyws.WithBootTime(10*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	dev.Register(mux)
	mux.HandleFunc("Shelly.Reboot", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		// Rebooting here would drop the connection before the answer.
		shellyws.AfterReply(ctx, dev.Reboot)
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- dev.Run(runCtx) }()
	defer func() { stop(); <-done }()

	conn, err := srv.Accept(ctx)
	if err == nil {
		_, err = conn.ExpectFullStatus(ctx)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	var res any
	err = conn.Call(ctx, "Shelly.Reboot", nil, &res)
	fmt.Println("answer:", res, err)
	<-conn.Done()
	fmt.Println("dropped, close code", int(websocket.CloseStatus(conn.Err())))
	conn, err = srv.Accept(ctx)
	if err == nil {
		_, err = conn.ExpectFullStatus(ctx)
	}
	fmt.Println("back with a fresh full status:", err == nil)
	// Output:
	// answer: <nil> <nil>
	// dropped, close code -1
	// back with a fresh full status: true
}

// Reboot without a request, as firmware does after an update: the
// callbacks bracket the boot time, and nothing queued before the reboot
// is sent after it.
func ExampleComponent_Reboot() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	cfg := shellyws.DefaultConfig()
	server := srv.URL()
	cfg.Enable, cfg.Server = true, &server

	dev, err := shellyws.New("shellyplus1-c049ef8cf4e0",
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)), shellywstest.FastBackoff(),
		shellyws.WithBootTime(10*time.Millisecond),
		shellyws.WithOnReboot(func() { fmt.Println("down: close the listener, reset uptime") }),
		shellyws.WithOnBoot(func() { fmt.Println("up: open the listener") }))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- dev.Run(runCtx) }()
	defer func() { stop(); <-done }()

	conn, err := srv.Accept(ctx)
	if err == nil {
		_, err = conn.ExpectFullStatus(ctx)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	dev.Reboot()
	// Published while down: from before the boot, never sent.
	_ = dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}})
	<-conn.Done()
	conn, err = srv.Accept(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	f, err := conn.Next(ctx)
	fmt.Println("first frame after the boot:", f.Method, err)
	// Output:
	// down: close the listener, reset uptime
	// up: open the listener
	// first frame after the boot: NotifyFullStatus <nil>
}
