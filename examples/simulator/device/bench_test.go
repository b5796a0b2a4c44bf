package device_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/examples/simulator/device"
)

// BenchmarkGetStatus is the cost of one Shelly.GetStatus (or the full status
// of a connect), encoded: what a server polling 10,000 devices pays per
// device.
func BenchmarkGetStatus(b *testing.B) {
	d, err := device.New(device.Options{ID: testID})
	if err != nil {
		b.Fatal(err)
	}
	req := &shellyws.Request{Method: "Shelly.GetStatus"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := d.Dispatch(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNew is the cost of one simulated device, for fleets.
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := device.New(device.Options{ID: device.DeriveID(testID, i)}); err != nil {
			b.Fatal(err)
		}
	}
}
