// Command minimal is the smallest useful device built on shellyws: it dials
// the server given with -server, sends its full status, answers
// Light.Toggle, and notifies the server of every change.
//
//	go run ./examples/minimal -server ws://127.0.0.1:8765/shelly
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"sync"
	"syscall"

	"github.com/shellyws/shellyws"
)

func main() {
	server := flag.String("server", "ws://127.0.0.1:8765/shelly", "ws:// or wss:// URL of the server")
	flag.Parse()

	mux := shellyws.NewMux()
	var mu sync.Mutex
	on := false
	status := func(context.Context) (map[string]any, error) {
		mu.Lock()
		defer mu.Unlock()
		return map[string]any{
			"sys":     map[string]any{"mac": "C049EF8CF4E0"},
			"light:0": map[string]any{"id": 0, "output": on},
		}, nil
	}
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, server
	dev, err := shellyws.New("shellyplus1-c049ef8cf4e0",
		shellyws.WithDispatcher(mux),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)),
		shellyws.WithFullStatus(status),
	)
	if err != nil {
		log.Fatal(err)
	}
	dev.Register(mux) // Ws.GetConfig, Ws.SetConfig, Ws.GetStatus
	mux.HandleFunc("Light.Toggle", func(ctx context.Context, req *shellyws.Request) (any, error) {
		mu.Lock()
		was := on
		on = !on
		mu.Unlock()
		err := dev.NotifyStatus(map[string]any{"light:0": map[string]any{"output": !was}})
		return map[string]any{"was_on": was}, err
	})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := dev.Run(ctx); err != nil { // until Ctrl-C; reconnects on its own
		log.Fatal(err)
	}
}
