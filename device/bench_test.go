package device_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// BenchmarkGetStatus is the cost of one Shelly.GetStatus (or the full status
// of a connect), encoded: what a server polling 10,000 devices pays per
// device.
func BenchmarkGetStatus(b *testing.B) {
	d, err := device.New(withModel(device.Options{ID: testID}))
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
		if _, err := device.New(withModel(device.Options{ID: device.DeriveID(testID, i)})); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeviceHeap reports the heap one device of a profile adds once the
// profile is loaded (heapB/device, the component included), beside the size
// of the status it answers (statusB): a device keeps only its own state, so
// a fleet of 100,000 shares one parsed dump per model.
func BenchmarkDeviceHeap(b *testing.B) {
	for _, name := range []string{"plus1pm-gen2", "pro3em-gen2", "pro4pmv2-gen2", "walldisplayxl-gen2"} {
		b.Run(name, func(b *testing.B) {
			p, err := profile.Builtin(name)
			if err != nil {
				b.Fatal(err)
			}
			status, _ := device.New(device.Options{Model: p}) // builds the shared model
			raw, _ := json.Marshal(status.Status())
			const perRound = 1000
			var devices []*device.Device
			var perDevice float64
			for i := 0; b.Loop(); i++ {
				devices = nil // the last round's devices go before measuring
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				devices = make([]*device.Device, 0, perRound)
				for j := range perRound {
					d, err := device.New(device.Options{Model: p, ID: p.ID(device.DeriveMAC("0a0000000000", i*perRound+j))})
					if err != nil {
						b.Fatal(err)
					}
					devices = append(devices, d)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perDevice = float64(after.HeapAlloc-before.HeapAlloc) / perRound
			}
			runtime.KeepAlive(devices)
			b.ReportMetric(perDevice, "heapB/device")
			b.ReportMetric(float64(len(raw)), "statusB")
		})
	}
}
