package profile_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// A built-in profile names the model and writes device ids in its style.
func ExampleBuiltin() {
	for _, name := range []string{"plus1pm-gen2", "pro3em-gen2", "walldisplay-gen2"} {
		p, err := profile.Builtin(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(name, p.Model, p.App, p.ID("c049ef8cf4e0"))
	}
	// Output:
	// plus1pm-gen2 SNSW-001P16EU Plus1PM shellyplus1pm-c049ef8cf4e0
	// pro3em-gen2 SPEM-003CEBEU Pro3EM shellypro3em-c049ef8cf4e0
	// walldisplay-gen2 SAWD-0A1XX10EU1 WallDisplay ShellyWallDisplay-C049EF8CF4E0
}

// A device of a real model in a line: here a Pro 3EM, whose EM.GetStatus
// answers the captured meter's readings with the literals it sent.
func ExampleNew() {
	d, err := profile.New("pro3em-gen2", device.Options{ID: "shellypro3em-c049ef8cf4e0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := d.Dispatch(context.Background(), &shellyws.Request{Method: "EM.GetStatus", Params: json.RawMessage(`{"id":0}`)})
	if err != nil {
		fmt.Println(err)
		return
	}
	var em map[string]json.RawMessage
	_ = json.Unmarshal(res.(json.RawMessage), &em)
	fmt.Println(d.Model().App, string(em["a_voltage"]), string(em["c_act_power"]))
	// Output:
	// Pro3EM 227.0 244.0
}
