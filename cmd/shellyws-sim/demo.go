package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

// demoTimeout bounds the whole demo; it takes about three seconds.
const demoTimeout = 12 * time.Second

// demoRetries is how many failed attempts the demo shows before the server
// comes back.
const demoRetries = 3

// demoPath is the URL path of the demo server, a path a real server uses.
const demoPath = "/shelly"

// demoHTTPAddr is where the demo device's web server listens.
const demoHTTPAddr = "127.0.0.1:0"

// demoSetConfigQuery is the HTTP GET form of Ws.SetConfig exactly as the
// vendor documents it, raw JSON in the query, not URL-encoded.
const demoSetConfigQuery = `/rpc/Ws.SetConfig?config={"ssl_ca":"*"}`

// runDemo plays the scenario of the README: a test server on loopback, one
// simulated device, the server's calls, a crash and the reconnect. Every
// line of the conversation comes from the real frames: the test server's
// transcript hook prints them.
func runDemo(parent context.Context, s *settings, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, demoTimeout)
	defer cancel()
	out := &printer{w: stdout}
	transcript := &holdPrinter{out: out}
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
			transcript.printf("   "+format, args...)
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
		policy: shellyws.ExponentialBackoff(250*time.Millisecond, 2*time.Second),
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
		Model:  s.profiles[0],
		ID:     s.id, // empty: a random id
		Store:  shellyws.NewMemoryStore(cfg),
		Logger: logger,
		Extra:  []shellyws.Option{shellyws.WithBackoff(reporter.delay)},
	})
	if err != nil {
		return err
	}
	reporter.comp = dev.Component()
	cfgJSON, _ := json.Marshal(cfg)

	heading("Start the device %s; its ws config: %s", dev.ID(), cfgJSON)
	// Its web server, which a real device serves from boot: the inbound
	// channels, on the same RPC methods.
	web, err := serveInbound(demoHTTPAddr, dev, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, web.close()) }()
	note("its own web server (inbound HTTP, shellyws.Handler) listens on %s", web.URL())
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

	heading("A client on the LAN calls the device's own web server, as these curl lines do")
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	curl := func(flags, path string) error {
		// The server's lines the request causes wait until its answer is
		// printed, so they read in the order they happen.
		transcript.hold()
		defer transcript.release()
		body, err := httpGet(ctx, client, web.URL()+path)
		if err != nil {
			return err
		}
		out.printf("   $ curl %s'%s%s'", flags, web.URL(), path)
		out.printf("   %s", body)
		return nil
	}
	if err := curl("", "/rpc/Ws.GetConfig"); err != nil {
		return err
	}
	if err := curl("-g ", demoSetConfigQuery); err != nil {
		return err
	}
	changed, err := conn.ExpectStatus(ctx)
	if err != nil {
		return err
	}
	ev, err := conn.ExpectEvent(ctx)
	if err != nil {
		return err
	}
	note("the server hears of it at once: %s, then %s of %s; the new ssl_ca applies at the next restart",
		compact(changed.Changes["sys"]), ev.Events[0].Event, ev.Events[0].Component)
	note("(-g keeps curl from reading {} as a URL pattern.)")
	note("this device is gone when the demo ends; the lines work with any device run with -http,")
	note("e.g. in three terminals:")
	out.printf("        go run ./examples/server")
	out.printf("        go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080")
	out.printf("        curl 'http://127.0.0.1:8080/rpc/Ws.GetConfig'")

	if err := demoAuth(ctx, s, conn, dev, web.URL(), transcript, heading, note); err != nil {
		return err
	}

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

// httpGet fetches url and returns its body, which must come with 200 OK.
func httpGet(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// demoPassword is the password the demo's server sets, unless -password
// gives one.
const demoPassword = "demo-pass"

// demoAuth plays a server setting a password, as Fleet Manager does with
// every device it admits, and a LAN client that must now authenticate.
func demoAuth(ctx context.Context, s *settings, conn *shellywstest.Conn, dev *device.Device, web string,
	transcript *holdPrinter, heading, note func(string, ...any)) error {
	password := demoPassword
	if s.password != "" {
		password = s.password
	}
	heading("The server sets a password with Shelly.SetAuth; the web server now asks for it")
	params := map[string]any{"user": shellyws.AuthUser, "realm": dev.ID(), "ha1": shellyws.ComputeHA1(dev.ID(), password)}
	if err := conn.Call(ctx, shellyws.SetAuthMethod, params, nil); err != nil {
		return err
	}
	note("ha1 = sha256(\"admin:<device id>:<password>\"): the password itself never travels or is stored")
	out := transcript.out
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer plain.CloseIdleConnections()
	digest := &http.Client{Transport: &shellywstest.DigestTransport{Password: password, Base: &http.Transport{}}, Timeout: 5 * time.Second}
	show := func(client *http.Client, flags, path string, header bool) error {
		transcript.hold()
		defer transcript.release()
		status, hdr, body, err := httpFetch(ctx, client, web+path)
		if err != nil {
			return err
		}
		out.printf("   $ curl %s'%s%s'", flags, web, path)
		if header {
			out.printf("   HTTP %d, WWW-Authenticate: %s", status, hdr.Get("WWW-Authenticate"))
			return nil
		}
		out.printf("   %s", body)
		return nil
	}
	if err := show(plain, "-i ", "/rpc/Ws.GetConfig", true); err != nil {
		return err
	}
	// The password is never printed, not even the demo's.
	if err := show(digest, "--digest -u 'admin:<password>' ", "/rpc/Ws.GetConfig", false); err != nil {
		return err
	}
	if err := show(plain, "", "/shelly", false); err != nil {
		return err
	}
	note("GET /shelly needs no password and reports auth_en and auth_domain (the realm)")
	if err := conn.Call(ctx, "Ws.GetStatus", nil, nil); err != nil {
		return err
	}
	note("the outbound channel is never challenged: the server's calls need no password")
	note("a simulator started with -password PASS has it set from boot:")
	transcript.out.printf("        go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080 -password PASS")
	transcript.out.printf("        curl --digest -u admin:PASS 'http://127.0.0.1:8080/rpc/Ws.GetConfig'")
	return nil
}

// httpFetch GETs url and returns what came back, whatever the status.
func httpFetch(ctx context.Context, client *http.Client, url string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, strings.TrimSpace(string(body)), err
}

// holdPrinter passes lines on to a printer, or keeps them while held.
type holdPrinter struct {
	mu    sync.Mutex
	out   *printer
	held  bool
	lines []string
}

func (h *holdPrinter) printf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	if h.held {
		h.lines = append(h.lines, line)
		return
	}
	h.out.printf("%s", line)
}

// hold keeps the lines printed from now on until release.
func (h *holdPrinter) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = true
}

// release prints the kept lines and lets later ones through.
func (h *holdPrinter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, line := range h.lines {
		h.out.printf("%s", line)
	}
	h.lines, h.held = nil, false
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
