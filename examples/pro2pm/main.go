// Command pro2pm is a vendor's device built on the device kit: a
// two-channel metered relay with a switch input and a temperature sensor,
// a password, config kept on disk across restarts, and Shelly.Reboot with
// its delay — everything a server expects of a real Gen2 device.
//
//	SHELLY_PASSWORD=secret go run ./examples/pro2pm -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080
//
// The password comes from the environment, not a flag: arguments show in ps.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
)

// model is the device's kind: what Shelly.GetDeviceInfo, GetConfig and
// GetStatus show, shared by every unit.
func model() (*device.Model, error) {
	return device.NewModel(device.Info{
		Model: "SPSW-202XE16EU", App: "Pro2PM", IDPrefix: "shellypro2pm",
		Ver: "1.4.4", FwID: "20241011-114455/1.4.4-g6d2a586",
	},
		device.SwitchSpec{ID: 0, Metering: true},
		device.SwitchSpec{ID: 1, Metering: true},
		device.InputSpec{ID: 0},
		device.TemperatureSpec{ID: 0},
	)
}

// Hardware is the board: what the firmware drives and reads.
type Hardware interface {
	SetRelay(ch int, on bool)
	Power(ch int) (watts, volts float64) // what the meter of channel ch reads
	Temperature() float64                // °C
}

// newDevice builds the device and wires it to hw. A zero Options.ID makes
// a random one; StateDir keeps its config, password and cfg_rev.
func newDevice(o device.Options, hw Hardware) (*device.Device, error) {
	m, err := model()
	if err != nil {
		return nil, err
	}
	o.Model = m
	d, err := device.New(o)
	if err != nil {
		return nil, err
	}
	for ch := range 2 {
		d.Switch(ch).OnOutput(func(on bool) { hw.SetRelay(ch, on) })
	}
	return d, nil
}

// sample reads the meters and the sensor into the device; it sends only
// what changed.
func sample(d *device.Device, hw Hardware) {
	for ch := range 2 {
		d.Switch(ch).SetMeter(hw.Power(ch))
	}
	_ = d.SetTemperature(0, hw.Temperature())
}

func main() {
	server := flag.String("server", "ws://127.0.0.1:8765/shelly", "the server to dial (ws:// or wss://)")
	addr := flag.String("http", "127.0.0.1:8080", "the device's own web server (inbound RPC)")
	state := flag.String("state", ".", "the directory that keeps the device's config")
	id := flag.String("id", "shellypro2pm-0a1b2c3d4e5f", "the device id: shellypro2pm-<12 hex digits>")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	hw := &board{log: log}
	d, err := newDevice(device.Options{
		ID: *id, StateDir: *state, Server: *server, Logger: log,
		Password: os.Getenv("SHELLY_PASSWORD"),
	}, hw)
	if err != nil {
		log.Error("pro2pm", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The device's own web server, with a real device's limits (timeouts,
	// at most DefaultMaxConns connections).
	h := shellyws.NewHandler(d.Component())
	srv := shellyws.NewHTTPServer(h)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("pro2pm", "err", err)
		os.Exit(1)
	}
	go func() {
		if err := srv.Serve(shellyws.LimitListener(ln, shellyws.DefaultMaxConns)); !errors.Is(err, http.ErrServerClosed) {
			log.Error("pro2pm: web server", "err", err)
		}
	}()
	go func() {
		for tick := time.Tick(time.Second); ctx.Err() == nil; <-tick {
			sample(d, hw)
		}
	}()
	if err := d.Run(ctx); err != nil { // until Ctrl-C; reconnects on its own
		log.Error("pro2pm", "err", err)
	}
	_ = srv.Close()
	h.Close()
}

// board stands in for the real hardware: relays that log, loads of 60 W.
type board struct {
	log *slog.Logger
	mu  sync.Mutex
	on  [2]bool
}

func (b *board) SetRelay(ch int, on bool) {
	b.mu.Lock()
	b.on[ch] = on
	b.mu.Unlock()
	b.log.Info("relay", "channel", ch, "on", on)
}

func (b *board) Power(ch int) (float64, float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on[ch] {
		return 60, 230
	}
	return 0, 230
}

func (b *board) Temperature() float64 { return 41.5 }
