package shellyws_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A test that crashes its server and then publishes waits until the device
// has seen its connection end: from then on a notification is queued and
// sent after the next NotifyFullStatus. Published earlier, it may be
// written to the dead socket and lost with it (at most once).
func ExampleComponent_WaitForStateChange() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server
	dev, err := shellyws.New("shellyplusi4-c049ef8cf4e0", shellywstest.FastBackoff(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- dev.Run(ctx) }()

	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	conn, err := srv.Accept(wait)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := conn.ExpectFullStatus(wait); err != nil {
		log.Fatal(err)
	}
	if err := dev.AwaitConnected(wait); err != nil {
		log.Fatal(err)
	}

	srv.Stop() // the server crashes
	// The pattern: wait for the device's state before publishing.
	if _, err := dev.WaitForStateChange(wait, shellyws.StateConnected); err != nil {
		log.Fatal(err)
	}
	id := 0
	if err := dev.NotifyEvent(shellyws.Event{Component: "input:0", ID: &id, Event: "single_push"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("queued while down:", dev.Stats().Queued)

	if err := srv.Restart(wait); err != nil {
		log.Fatal(err)
	}
	if conn, err = srv.Accept(wait); err != nil {
		log.Fatal(err)
	}
	full, err := conn.ExpectFullStatus(wait)
	if err != nil {
		log.Fatal(err)
	}
	ev, err := conn.ExpectEvent(wait)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(full.Method, "then", ev.Events[0].Component, ev.Events[0].Event)
	fmt.Println("dropped:", dev.Stats().Dropped)

	cancel()
	<-done
	// Output:
	// queued while down: 1
	// NotifyFullStatus then input:0 single_push
	// dropped: 0
}
