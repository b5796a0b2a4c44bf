package shellyws_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A device with one method of its own, connected to a loopback server that
// calls that method and reads the notification it causes.
func ExampleComponent() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server

	mux := shellyws.NewMux()
	dev, err := shellyws.New("shellyplus1-c049ef8cf4e0",
		shellyws.WithDispatcher(mux),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
	if err != nil {
		log.Fatal(err)
	}
	dev.Register(mux)
	mux.HandleFunc("Light.Set", func(ctx context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			ID int  `json:"id"`
			On bool `json:"on"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err // -103 with a clear message
		}
		return nil, dev.NotifyStatus(map[string]any{"light:0": map[string]any{"output": p.On}})
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- dev.Run(ctx) }()

	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	conn, err := srv.Accept(wait)
	if err != nil {
		log.Fatal(err)
	}
	full, err := conn.ExpectFullStatus(wait)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from %s: ws=%s\n", full.Method, full.Src, full.Status["ws"])

	if err := conn.Call(wait, "light.set", map[string]any{"id": 0, "on": true}, nil); err != nil {
		log.Fatal(err)
	}
	delta, err := conn.ExpectStatus(wait)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: light:0=%s\n", delta.Method, delta.Changes["light:0"])

	var rpcErr *shellyws.Error
	err = conn.Call(wait, "Light.Set", map[string]any{"on": "yes"}, nil)
	if errors.As(err, &rpcErr) {
		fmt.Println(rpcErr.Code, rpcErr.Message)
	}

	cancel()
	fmt.Println("Run returned:", <-done)
	// Output:
	// NotifyFullStatus from shellyplus1-c049ef8cf4e0: ws={"connected":true}
	// NotifyStatus: light:0={"output":true}
	// -103 Invalid params: 'on' has the wrong type (string)
	// Run returned: <nil>
}

// Ws.SetConfig stores a new config at once; it takes effect when the device
// restarts the component, as Shelly.Reboot does on a real device.
func ExampleComponent_Restart() {
	dev, err := shellyws.New("shellyplus1-c049ef8cf4e0")
	if err != nil {
		log.Fatal(err)
	}
	cfg := dev.GetConfig()
	server := "wss://fleet.example/shelly?token=abc"
	cfg.Enable, cfg.Server = true, &server
	restart, err := dev.SetConfig(cfg)
	fmt.Println("restart required:", restart, err)
	dev.Restart() // Run, if running, now redials with the new config

	bad := cfg
	http := "http://not-a-websocket"
	bad.Server = &http
	_, err = dev.SetConfig(bad)
	fmt.Println(err)
	fmt.Println("still stored:", *dev.GetConfig().Server)
	// Output:
	// restart required: true <nil>
	// rpc error -103: Invalid argument 'server': must start with ws:// or wss://
	// still stored: wss://fleet.example/shelly?token=abc
}
