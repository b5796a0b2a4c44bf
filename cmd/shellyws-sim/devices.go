package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/internal/redact"
)

// statusEvery is how often -devices N prints its status line.
const statusEvery = 5 * time.Second

// idFile is where -state keeps the base id when -id is not given, so a
// restarted simulator is the same device.
const idFile = "id"

// runDevices runs s.devices devices until ctx ends, and returns the exit
// status.
func runDevices(ctx context.Context, s *settings, stdout, stderr io.Writer) int {
	out := &printer{w: stdout}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "simulator: "+format+"\n", args...)
		return 1
	}
	if s.stateDir != "" {
		if err := os.MkdirAll(s.stateDir, 0o700); err != nil {
			return fail("-state: %v", err)
		}
	}
	base, err := baseID(s)
	if err != nil {
		return fail("%v", err)
	}
	backoffLines := &notesHandler{notes: &notes{out: out}}
	if s.devices > 1 {
		backoffLines.every = time.Second
	}
	logger := slog.New(backoffLines)
	if s.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var userCA func() ([]byte, error)
	if s.userCA != "" {
		path := s.userCA
		userCA = func() ([]byte, error) { return os.ReadFile(path) }
	}
	single := s.devices == 1
	gcNote, adaptGC := applyGCDefaults(s.devices, envOrEmpty)
	var dialFrom func(i int) dialFunc
	if s.localAddrs != nil {
		dialFrom = s.localAddrs.dialers(s.devices)
	}
	gate := newDialGate(maxHandshakes)
	var metrics *simMetrics
	if s.metricsAddr != "" {
		metrics = newSimMetrics()
	}

	devices := make([]*device.Device, 0, s.devices)
	var hooks []*powerHooks     // with -http: each device's, for its server
	var announcers []*mdnsHooks // with -mdns: each device's, for the responder
	dialing := 0
	first := s.shard.first(s.devices)
	for i := range s.devices {
		n := first + i // the device's number across shards
		p := s.profiles[n%len(s.profiles)]
		id := deviceID(base, p, n)
		store, cfg, err := openStore(s, id)
		if err != nil {
			return fail("%v", err)
		}
		if cfg.Enable && cfg.Server != nil {
			dialing++
		}
		auth, err := openAuthStore(s, id)
		if err != nil {
			return fail("%v", err)
		}
		o := device.Options{
			Model:       p,
			ID:          id,
			Telemetry:   s.telemetry,
			BootTime:    s.bootTime,
			Store:       store,
			State:       openState(s, id),
			UserCA:      userCA,
			Logger:      logger,
			PowerDeltas: true, // real servers chart power; send it as a device does
			Extra:       []shellyws.Option{shellyws.WithAuthStore(auth)},

			WakeupPeriod: s.wakeupFor(p),
			AwakeIdle:    s.awakeIdle,
			AwakeMax:     s.awakeMax,

			UpdateStable: s.updateStable,
			UpdateBeta:   s.updateBeta,
			OTATime:      s.otaTime,
		}
		o.FirstWake = firstWake(s, p, i)
		var reporter *retryReporter
		if single {
			reporter = &retryReporter{
				policy: shellyws.DefaultBackoff,
				report: func(attempt int, delay time.Duration, lost bool, cause error) {
					what := "dial failed"
					if lost {
						what = "connection lost"
					}
					out.printf("%s %s: %s; retrying in %v (attempt %d)",
						clock(), what, describe(cause), roundDelay(delay), attempt)
				},
			}
			o.Extra = append(o.Extra,
				shellyws.WithBackoff(reporter.delay),
				shellyws.WithOnConnect(func() { out.printf("%s connected; NotifyFullStatus sent", clock()) }),
			)
			o.OnRequest = func(req *shellyws.Request, err error) {
				out.printf("%s %s", clock(), describeRequest(req, err))
			}
			o.OnWake = func(w device.WakeInfo) {
				out.printf("%s awake (wakeup_reason %s/%s); dialing at once", clock(), w.Boot, w.Cause)
			}
			o.OnSleep = func(w device.WakeInfo) {
				out.printf("%s %s", clock(), describeSleep(w))
			}
		}
		var dial dialFunc
		if dialFrom != nil {
			dial = dialFrom(i)
		}
		o.Extra = append(o.Extra, shellyws.WithDialContext(gate.wrap(dial)))
		if s.httpAddr != "" {
			h := &powerHooks{}
			hooks = append(hooks, h)
			o.OnDown, o.OnUp = h.down, h.up
		}
		o.Channels = s.channelOptions(i)
		if s.mdnsIface != "" {
			m := &mdnsHooks{id: id, log: logger}
			announcers = append(announcers, m)
			down, up := o.OnDown, o.OnUp
			o.OnDown = func() { m.down(); down() }
			o.OnUp = func() { up(); m.up() }
		}
		var built func(*device.Device)
		if metrics != nil {
			var policy func(attempt int) time.Duration
			if reporter != nil {
				policy = reporter.delay
			}
			var extra []shellyws.Option
			extra, built = metrics.deviceOptions(policy)
			o.Extra = append(o.Extra, extra...)
		}
		d, err := device.New(o)
		if err != nil {
			return fail("device %s: %v", id, err)
		}
		if reporter != nil {
			reporter.comp = d.Component()
		}
		if built != nil {
			built(d)
		}
		devices = append(devices, d)
	}
	if dialing == 0 {
		fmt.Fprintf(stderr, "simulator: no server to dial: give -server URL (the stored config has enable=false or no server)\n")
		return 2
	}

	cfg := devices[0].Component().GetConfig()
	if single {
		d := devices[0]
		out.printf("simulator: %s (%s %s, sys.mac %s) dialing %s, ssl_ca %s; Ctrl-C to stop",
			d.ID(), d.Model().Name, d.Model().Model, d.MAC(), redact.URL(deref(cfg.Server, "null")), deref(cfg.SSLCA, "null"))
		if s.stateDir != "" {
			out.printf("simulator: ws config kept in %s", storePath(s.stateDir, d.ID()))
		}
		if d.Component().Auth().Enable {
			out.printf("simulator: authentication on (user admin, realm %s)", d.ID())
		}
	} else {
		names := make([]string, len(s.profiles))
		for i, p := range s.profiles {
			names[i] = p.Name
		}
		out.printf("simulator: %d devices %s … %s (%s) dialing %s; Ctrl-C to stop",
			len(devices), devices[0].ID(), devices[len(devices)-1].ID(), strings.Join(names, ", "),
			redact.URL(deref(cfg.Server, "null")))
	}
	if s.shard.count > 1 {
		out.printf("simulator: shard %d/%d: device numbers %d … %d of %d",
			s.shard.index, s.shard.count, first, first+s.devices-1, s.shard.count*s.devices)
	}
	if s.localAddrs != nil {
		out.printf("simulator: dialing from %s … %s (-local-addr %s, device i from address i mod %d)",
			s.localAddrs.addr(0), s.localAddrs.last(s.devices), s.localAddr, s.localAddrs.hosts)
	}
	if gcNote != "" {
		out.printf("simulator: %s", gcNote)
	}
	if metrics != nil {
		metrics.devices = devices
		ms, err := serveMetrics(s.metricsAddr, metrics)
		if err != nil {
			return fail("%v", err)
		}
		defer func() {
			if err := ms.close(); err != nil {
				fmt.Fprintf(stderr, "simulator: -metrics shutdown: %v\n", err)
			}
		}()
		out.printf("simulator: metrics on %s, pprof on %s", ms.URL(), strings.TrimSuffix(ms.URL(), "metrics")+"debug/pprof/")
	}

	var servers []*inbound
	if s.httpAddr != "" {
		servers, err = serveDevices(s.httpAddr, devices, logger)
		if err != nil {
			fmt.Fprintf(stderr, "simulator: %v\n", err)
			var le *listenError
			if errors.As(err, &le) && le.bad {
				return 2
			}
			return 1
		}
		for i, in := range servers {
			hooks[i].in.Store(in)
		}
		printInbound(out, s.httpAddr, devices, servers)
	}
	printChannels(out, s, devices)
	if s.mdnsIface != "" {
		r, err := startMDNS(s, devices, servers, announcers, logger)
		if err != nil {
			fmt.Fprintf(stderr, "simulator: %v\n", err)
			_ = closeAll(servers)
			return 1
		}
		defer func() {
			if err := stopMDNS(r, announcers); err != nil {
				fmt.Fprintf(stderr, "simulator: -mdns: %v\n", err)
			}
		}()
		out.printf("simulator: mDNS on %s announces %d device(s) as _shelly._tcp and _http._tcp", s.mdnsIface, len(devices))
	}

	// No goroutine per device: a connected idle device is read by the
	// library's poller, a sleeping one is woken by a timer.
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, d := range devices {
		if err := d.Start(ctx); err != nil { // a fresh device: never ErrAlreadyRunning
			cancel()
			for _, d := range devices[:i] {
				d.Wait()
			}
			_ = closeAll(servers)
			return fail("device %s: %v", d.ID(), err)
		}
	}
	if !single {
		wg.Go(func() { printStatus(ctx, out, devices) })
	}
	if adaptGC {
		wg.Go(func() { watchGC(ctx, devices, gate) })
	}
	<-ctx.Done()
	out.printf("%s stopping %d device(s): closing with 1001 (going away)", clock(), len(devices))
	if err := closeAll(servers); err != nil {
		fmt.Fprintf(stderr, "simulator: -http shutdown: %v\n", err)
	}
	wg.Wait()
	for _, d := range devices {
		d.Wait()
	}
	if !single {
		out.printf("%s", statusLine(devices))
	}
	return 0
}

// serveDevices starts the -http server of every device: device i on
// PORT+i, or each on a free port for port 0. On failure the servers already
// started are closed.
func serveDevices(addr string, devices []*device.Device, logger *slog.Logger) ([]*inbound, error) {
	servers := make([]*inbound, 0, len(devices))
	for i, d := range devices {
		in, err := serveInbound(deviceHTTPAddr(addr, i), d, logger)
		if err != nil {
			_ = closeAll(servers)
			return nil, err
		}
		servers = append(servers, in)
	}
	return servers, nil
}

// printInbound tells where the -http servers listen, with a curl line to
// paste for one device.
func printInbound(out *printer, addr string, devices []*device.Device, servers []*inbound) {
	const channels = "GET /rpc/<Method>?..., POST /rpc, websocket /rpc, GET /shelly"
	switch {
	case len(servers) == 1:
		out.printf("simulator: inbound HTTP on %s serves %s; try", servers[0].where(), channels)
		if devices[0].Component().Auth().Enable {
			out.printf("  curl --digest -u 'admin:<password>' '%s/rpc/Ws.GetConfig'", servers[0].URL())
		} else {
			out.printf("  curl '%s/rpc/Ws.GetConfig'", servers[0].URL())
		}
	case httpPort(addr) == 0:
		for i, in := range servers {
			out.printf("simulator: inbound HTTP of %s on %s", devices[i].ID(), in.where())
		}
		out.printf("simulator: each serves %s", channels)
	default:
		last := len(servers) - 1
		out.printf("simulator: inbound HTTP of %s on %s … %s on %s, device i on port %d+i; each serves %s",
			devices[0].ID(), servers[0].where(), devices[last].ID(), servers[last].where(),
			httpPort(addr), channels)
	}
}

// baseID is -id, or with -state the id kept there (made up on first
// start). Only its MAC counts for a kept id: the model is the flags'.
func baseID(s *settings) (string, error) {
	if s.idSet {
		return s.id, nil
	}
	if s.stateDir == "" {
		return device.RandomIDFor(s.profiles[0]), nil
	}
	path := filepath.Join(s.stateDir, idFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(data))
		if _, _, err := device.SplitID(id); err != nil {
			return "", fmt.Errorf("%s: %v", path, err)
		}
		return id, nil
	case errors.Is(err, os.ErrNotExist):
		id := device.RandomIDFor(s.profiles[0])
		if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
			return "", err
		}
		return id, nil
	default:
		return "", err
	}
}

func storePath(dir, id string) string { return filepath.Join(dir, id+".ws.json") }

func authStorePath(dir, id string) string { return filepath.Join(dir, id+".auth.json") }

// openState returns the store of the rest of the device's state
// (component configs, cfg_rev): with -state a file next to the ws config,
// else nil, kept in memory.
func openState(s *settings, id string) device.Store {
	if s.stateDir == "" {
		return nil
	}
	return device.NewFileStore(filepath.Join(s.stateDir, id+".state.json"))
}

// openAuthStore returns the device's auth store with -password applied as
// Shelly.SetAuth would apply it (an empty one turns authentication off); with -state
// it is kept next to the ws config and the flag's value is saved.
func openAuthStore(s *settings, id string) (shellyws.AuthStore, error) {
	var store shellyws.AuthStore
	if s.stateDir != "" {
		store = shellyws.NewFileAuthStore(authStorePath(s.stateDir, id))
	} else {
		store = shellyws.NewMemoryAuthStore(shellyws.AuthConfig{})
	}
	cur, err := store.Load()
	if err != nil || !s.passwordSet {
		return store, err
	}
	want := shellyws.AuthConfig{}
	if s.password != "" {
		want = shellyws.PasswordAuth(id, s.password)
	}
	if want != cur {
		if err := store.Save(want); err != nil {
			return nil, err
		}
	}
	return store, nil
}

// openStore returns the device's config store with the explicit flags
// applied: -server and -ssl-ca override what is stored and, with -state, are
// saved, so the file always shows what the device runs with.
func openStore(s *settings, id string) (shellyws.ConfigStore, shellyws.Config, error) {
	var store shellyws.ConfigStore
	if s.stateDir != "" {
		store = shellyws.NewFileStore(storePath(s.stateDir, id))
	} else {
		store = shellyws.NewMemoryStore(shellyws.DefaultConfig())
	}
	cfg, err := store.Load()
	if err != nil {
		return nil, cfg, err
	}
	before, _ := json.Marshal(cfg)
	if s.serverSet {
		server := s.server
		cfg.Enable, cfg.Server = true, &server
	}
	if s.sslCASet {
		cfg.SSLCA = s.sslCA
	}
	if after, _ := json.Marshal(cfg); string(after) != string(before) {
		if err := store.Save(cfg); err != nil {
			return nil, cfg, err
		}
	}
	return store, cfg, nil
}

// printStatus prints a status line every statusEvery until ctx ends.
func printStatus(ctx context.Context, out *printer, devices []*device.Device) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			out.printf("%s", statusLine(devices))
		}
	}
}

// statusLine counts the devices' states and connection counters.
func statusLine(devices []*device.Device) string {
	var states [5]int
	var connects, lost, failed uint64
	for _, d := range devices {
		c := d.Component()
		if st := d.State(); int(st) < len(states) {
			states[st]++
		}
		st := c.Stats()
		connects += st.Connects
		lost += st.Disconnects
		failed += st.DialFailures
	}
	line := fmt.Sprintf("%s devices %d: connected %d, connecting %d, disconnected %d",
		clock(), len(devices), states[shellyws.StateConnected], states[shellyws.StateConnecting],
		states[shellyws.StateDisconnected])
	if n := states[shellyws.StateAsleep]; n > 0 {
		line += fmt.Sprintf(", asleep %d", n)
	}
	if n := states[shellyws.StateClosed]; n > 0 {
		line += fmt.Sprintf(", stopped %d", n)
	}
	return line + fmt.Sprintf(" | connects %d, disconnects %d, failed dials %d", connects, lost, failed)
}

// firstWake is when sleeping device i of the process first wakes: device i
// of N at i/N of its period, so that a fleet never wakes in lock-step; a
// single device at once.
func firstWake(s *settings, p *device.Model, i int) time.Duration {
	period := s.wakeupFor(p)
	if period == 0 {
		period = p.WakeupPeriod()
	}
	if period <= 0 || s.devices == 1 {
		return 0
	}
	return time.Duration(int64(period) * int64(i) / int64(s.devices))
}

// describeSleep renders the end of a wake as one line.
func describeSleep(w device.WakeInfo) string {
	r := w.Result
	var what string
	switch r.End {
	case shellyws.WakeInterrupted:
		what = "rebooting: the wake ends without a sleep event"
	default:
		what = fmt.Sprintf("asleep after %v (%s", r.Awake.Round(10*time.Millisecond), r.End)
		if r.SleepSent {
			what += "; sleep event sent, closed with 1000"
		}
		what += ")"
	}
	if r.Dials > 0 && !r.Connected {
		what += fmt.Sprintf("; no connection in %d dial(s): %s", r.Dials, describe(r.Err))
	}
	return fmt.Sprintf("%s; next wake in %v", what, w.Next)
}

// describeRequest renders a served request as one line.
func describeRequest(req *shellyws.Request, err error) string {
	var b strings.Builder
	b.WriteString("<- ")
	b.WriteString(req.Method)
	if len(req.Params) > 0 {
		p := redact.Text(string(req.Params)) // before cutting: a cut secret is not recognised
		if len(p) > 120 {
			p = p[:120] + "…"
		}
		b.WriteString(" " + p)
	}
	if req.Src != "" {
		b.WriteString(" from " + req.Src)
	}
	if err != nil {
		e := shellyws.AsError(err)
		fmt.Fprintf(&b, ": error %d %s", e.Code, e.Message)
	}
	return b.String()
}

func clock() string { return time.Now().Format("15:04:05") }

func deref(s *string, null string) string {
	if s == nil {
		return null
	}
	return *s
}
