package profile_test

import (
	"fmt"

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
