package shellywstest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// Decode reads a device's notifications and a result into a struct or a
// map in one call each; in a test, DecodeT does the same and fails the
// test on error.
func ExampleDecode() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0", shellywstest.FastBackoff(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
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
	if _, err := conn.ExpectFullStatus(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// A NotifyStatus delta, one component into a struct.
	_ = dev.NotifyStatus(map[string]any{"switch:0": map[string]any{"id": 0, "output": true, "source": "WS_in"}})
	delta, err := conn.ExpectStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	sw, err := shellywstest.Decode[struct {
		Output bool   `json:"output"`
		Source string `json:"source"`
	}](delta.Changes["switch:0"])
	fmt.Println(sw.Output, sw.Source, err)

	// A NotifyEvent's event, with its extra fields, into a map.
	_ = dev.NotifyEvent(shellyws.Event{Component: "sys", Event: "config_changed", Fields: map[string]any{"cfg_rev": 36}})
	ev, err := conn.ExpectEvent(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fields, err := shellywstest.Decode[map[string]any](ev.Events[0].Raw)
	fmt.Println(fields["event"], fields["cfg_rev"], err)

	// A whole response frame from CallRaw.
	resp, err := conn.CallRaw(ctx, []byte(`{"id":"x","src":"test","method":"Ws.GetConfig"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	frame, err := shellywstest.Decode[struct {
		Result shellyws.Config `json:"result"`
	}](resp)
	fmt.Println(frame.Result.Enable, *frame.Result.Server == srv.URL(), err)
	// Output:
	// true WS_in <nil>
	// config_changed 36 <nil>
	// true true <nil>
}
