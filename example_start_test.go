package shellyws_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A fleet in one process: Start returns at once and a connected device that
// is idle holds no goroutine, so a process can hold thousands. Wait (or
// Done) tells when each has closed its connection and stopped.
func ExampleComponent_Start() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server

	ctx, cancel := context.WithCancel(context.Background())
	var fleet []*shellyws.Component
	for i := range 3 {
		dev, err := shellyws.New(fmt.Sprintf("shellyplus1-c049ef8cf4e%d", i),
			shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
		if err != nil {
			log.Fatal(err)
		}
		if err := dev.Start(ctx); err != nil {
			log.Fatal(err)
		}
		fleet = append(fleet, dev)
	}

	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for range fleet {
		conn, err := srv.Accept(wait)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := conn.ExpectFullStatus(wait); err != nil {
			log.Fatal(err)
		}
	}
	for _, dev := range fleet {
		if err := dev.AwaitConnected(wait); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(len(fleet), "devices connected")

	cancel() // every device closes with 1001
	for _, dev := range fleet {
		dev.Wait()
		fmt.Println(dev.ID(), dev.State())
	}
	// Output:
	// 3 devices connected
	// shellyplus1-c049ef8cf4e0 closed
	// shellyplus1-c049ef8cf4e1 closed
	// shellyplus1-c049ef8cf4e2 closed
}
