package shellywstest_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// FastBackoff makes a shellyws device retry in milliseconds, here after a
// handshake refused with 503 and a Retry-After of two minutes.
func ExampleFastBackoff() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	srv.RejectNextWithHeader(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"120"}})

	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0",
		shellywstest.FastBackoff(), shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
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
	if err != nil {
		fmt.Println(err)
		return
	}
	fs, err := conn.ExpectFullStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(fs.Method, "after", srv.Handshakes(), "handshakes")
	// Output:
	// NotifyFullStatus after 2 handshakes
}

// NextMethod waits for the NotifyEvent a test cares about, skipping the
// NotifyStatus the device sends first.
func ExampleConn_NextMethod() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0",
		shellywstest.FastBackoff(), shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
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
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"output": true}})
	_ = dev.NotifyEvent(shellyws.Event{Component: "input:0", Event: "single_push"})
	f, err := conn.NextMethod(ctx, shellywstest.MethodNotifyEvent)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Method, f.Dst)
	// Output:
	// NotifyEvent ws
}

// RunComponent in a device's unit test: the device runs, is connected when
// RunComponent returns, and is stopped, with Run awaited, when the test
// ends.
func ExampleRunComponent() {
	var t *testing.T // the test's, in func TestDevice(t *testing.T)
	srv := shellywstest.NewServer(t)
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0",
		shellywstest.FastBackoff(), shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
	if err != nil {
		t.Fatal(err)
	}
	shellywstest.RunComponent(t, dev)
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t) // the device is connected: requests may follow
	var st shellyws.Status
	conn.CallT(t, "Ws.GetStatus", nil, &st)
}
