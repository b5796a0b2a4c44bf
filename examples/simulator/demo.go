package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/examples/simulator/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// demoTimeout bounds the whole demo; it takes about three seconds.
const demoTimeout = 12 * time.Second

// demoRetries is how many failed attempts the demo shows before the server
// comes back.
const demoRetries = 3

// demoPath is the URL path of the demo server, a path a real server uses.
const demoPath = "/shelly"

// runDemo plays the scenario of the README: a test server on loopback, one
// simulated device, the server's calls, a crash and the reconnect. Every
// line of the conversation comes from the real frames: the test server's
// transcript hook prints them.
func runDemo(parent context.Context, s *settings, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, demoTimeout)
	defer cancel()
	out := &printer{w: stdout}
	step := 0
	heading := func(format string, args ...any) {
		step++
		out.printf("\n%d. "+format, append([]any{step}, args...)...)
	}
	note := func(format string, args ...any) { out.printf("   ** "+format, args...) }

	out.printf("Shelly Gen2 Outbound Websocket demo: a simulated Shelly Plus 1PM and a test server, on loopback.")
	out.printf(`Lines: "->" device to server, "<-" server to device, "==" connection events, "**" notes.`)

	heading("Start a test server (shellywstest) on 127.0.0.1")
	srv := shellywstest.NewUnstartedServer(
		shellywstest.WithPath(demoPath),
		shellywstest.WithSrc("demo_server"),
		shellywstest.WithLogf(func(format string, args ...any) {
			out.printf("   "+format, args...)
		}),
	)
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Close()

	// The device: its ws config points at the server, as Ws.SetConfig from
	// a server or the device's web UI would leave it.
	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server
	attempts := make(chan int, 16)
	reporter := &retryReporter{
		// Quicker than a real device (1 s doubling to 60 s) so the demo
		// shows several retries in a couple of seconds; jittered all the
		// same.
		BackOff: newBackoff(250*time.Millisecond, 2*time.Second),
		report: func(attempt int, delay time.Duration, lost bool, cause error) {
			what := "dial failed"
			if lost {
				what = "connection lost"
			}
			note("device: %s: %s; retrying in %v (attempt %d)", what, describe(cause), roundDelay(delay), attempt)
			select {
			case attempts <- attempt:
			default:
			}
		},
	}
	logger := slog.New(slog.DiscardHandler)
	if s.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	dev, err := device.New(device.Options{
		ID:     s.id, // empty: a random id
		Store:  shellyws.NewMemoryStore(cfg),
		Logger: logger,
		Extra:  []shellyws.Option{shellyws.WithBackoff(func() backoff.BackOff { return reporter })},
	})
	if err != nil {
		return err
	}
	reporter.comp = dev.Component()
	cfgJSON, _ := json.Marshal(cfg)

	heading("Start the device %s; its ws config: %s", dev.ID(), cfgJSON)
	devCtx, stopDevice := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- dev.Run(devCtx) }()
	defer func() {
		stopDevice()
		select {
		case <-runDone:
		case <-time.After(demoTimeout):
			err = errors.Join(err, errors.New("the device did not stop"))
		}
	}()

	conn, err := srv.Accept(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the device: %w", err)
	}
	fs, err := conn.ExpectFullStatus(ctx)
	if err != nil {
		return err
	}
	note("the first frame is NotifyFullStatus, the whole Shelly.GetStatus: %s", summary(fs.Status))

	heading("The server asks who it is talking to")
	var info device.DeviceInfo
	if err := conn.Call(ctx, "Shelly.GetDeviceInfo", nil, &info); err != nil {
		return err
	}
	note("a %s (%s), gen %d, firmware %s; src %s matches sys.mac %s", info.App, info.Model, info.Gen, info.Ver, conn.Src(), info.MAC)

	heading("It reads the device's Outbound Websocket config")
	var wsCfg json.RawMessage
	if err := conn.Call(ctx, "Ws.GetConfig", nil, &wsCfg); err != nil {
		return err
	}

	heading("It switches the relay; the device reports the change with NotifyStatus")
	if err := conn.Call(ctx, "Switch.Toggle", map[string]int{"id": 0}, nil); err != nil {
		return err
	}
	delta, err := conn.ExpectStatus(ctx)
	if err != nil {
		return err
	}
	note("a delta: only what changed, %s", compact(delta.Changes["switch:0"]))

	heading("The server crashes: connections dropped, port closed (Stop)")
	srv.Stop()
	for n := 0; n < demoRetries; {
		select {
		case n = <-attempts:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the device to retry: %w", ctx.Err())
		}
	}

	heading("The server comes back on the same address (Restart)")
	if err := srv.Restart(ctx); err != nil {
		return err
	}
	conn, err = srv.Accept(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the device to come back: %w", err)
	}
	fs, err = conn.ExpectFullStatus(ctx)
	if err != nil {
		return err
	}
	st := dev.Component().Stats()
	note("back after %d refused dials, with a fresh NotifyFullStatus: %s", st.DialFailures, summary(fs.Status))

	// Issue 7 (the inbound HTTP handler) adds one step here: the same
	// device answering `curl http://127.0.0.1:PORT/rpc/Shelly.GetDeviceInfo`.

	heading("The device shuts down: a clean close with 1001 (going away)")
	stopDevice()
	select {
	case <-conn.Done():
	case <-ctx.Done():
		return fmt.Errorf("waiting for the close: %w", ctx.Err())
	}
	srv.Close()
	out.printf("\nDone in %.1f s.", time.Since(start).Seconds())
	return nil
}

// summary picks the fields of a full status a reader cares about first.
func summary(status map[string]json.RawMessage) string {
	var sys struct {
		MAC    string `json:"mac"`
		Uptime int    `json:"uptime"`
	}
	var ws struct {
		Connected bool `json:"connected"`
	}
	var sw struct {
		Output bool    `json:"output"`
		APower float64 `json:"apower"`
	}
	_ = json.Unmarshal(status["sys"], &sys)
	_ = json.Unmarshal(status["ws"], &ws)
	_ = json.Unmarshal(status["switch:0"], &sw)
	return fmt.Sprintf("sys.mac=%s ws.connected=%t switch:0.output=%t apower=%gW (%d components)",
		sys.MAC, ws.Connected, sw.Output, sw.APower, len(status))
}

// compact renders raw JSON on one line.
func compact(raw json.RawMessage) string {
	return strings.Join(strings.Fields(string(raw)), "")
}
