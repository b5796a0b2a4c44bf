package device_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// A device of your own: a model from specs, one unit of it, and the
// hardware's hook on its relay. A server that switches the relay drives
// the hook and hears a NotifyStatus delta.
func ExampleNewModel() {
	model, err := device.NewModel(device.Info{Model: "SPSW-201XE16EU", App: "Pro1PM", IDPrefix: "shellypro1pm"},
		device.SwitchSpec{ID: 0, Metering: true},
		device.InputSpec{ID: 0},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	d, err := device.New(device.Options{Model: model, ID: "shellypro1pm-c049ef8cf4e0", Server: srv.URL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	relay := make(chan bool, 1)
	d.Switch(0).OnOutput(func(on bool) { relay <- on }) // drive the real relay here

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
	if _, err := conn.ExpectFullStatus(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := conn.Call(ctx, "Switch.Set", map[string]any{"id": 0, "on": true}, nil); err != nil {
		fmt.Println(err)
		return
	}
	delta, err := conn.ExpectStatus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("relay on:", <-relay)
	fmt.Println(string(delta.Changes["switch:0"]))
	// Output:
	// relay on: true
	// {"id":0,"output":true,"source":"WS_in"}
}

// A component the kit has no type for: its config and status, and a
// method that changes the status. The device serves Boiler.GetStatus,
// GetConfig and SetConfig like for any component.
func ExampleCustomSpec() {
	heat := func(ctx context.Context, req *shellyws.Request) (any, error) {
		var p struct {
			On bool `json:"on"`
		}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		return nil, device.FromContext(ctx).Update("boiler:0", map[string]any{"heating": p.On})
	}
	model, err := device.NewModel(device.Info{Model: "X-BOILER", App: "Boiler", IDPrefix: "acmeboiler"},
		device.CustomSpec{
			Key:     "boiler:0",
			Config:  json.RawMessage(`{"name":null,"target_C":55.0}`),
			Status:  json.RawMessage(`{"heating":false,"water_C":48.5}`),
			Methods: map[string]shellyws.DispatcherFunc{"Heat": heat},
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := device.New(device.Options{Model: model, ID: "acmeboiler-c049ef8cf4e0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, req := range []*shellyws.Request{
		{Method: "Boiler.Heat", Params: json.RawMessage(`{"id":0,"on":true}`)},
		{Method: "Boiler.GetStatus", Params: json.RawMessage(`{"id":0}`)},
		{Method: "Boiler.SetConfig", Params: json.RawMessage(`{"id":0,"config":{"target_C":60.5}}`)},
		{Method: "Boiler.GetConfig", Params: json.RawMessage(`{"id":0}`)},
	} {
		res, err := d.Dispatch(ctx, req)
		out, _ := json.Marshal(res)
		fmt.Println(req.Method, string(out), err)
	}
	// Output:
	// Boiler.Heat null <nil>
	// Boiler.GetStatus {"id":0,"heating":true,"water_C":48.5} <nil>
	// Boiler.SetConfig {"restart_required":false} <nil>
	// Boiler.GetConfig {"id":0,"name":null,"target_C":60.5} <nil>
}
