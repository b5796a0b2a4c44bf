// Command simulator is a simulated Shelly device — a Plus 1PM by default,
// or any of the built-in models from real dumps (-profile) — that speaks the
// Gen2 Outbound Websocket.
//
// Run without flags, it plays a short demo on loopback: a test server, one
// simulated device, and a transcript of what they say to each other.
//
//	go run ./cmd/shellyws-sim
//
// With -server it is a device for a real server (Home Assistant, Fleet
// Manager, examples/server) and runs until interrupted:
//
//	go run ./cmd/shellyws-sim -server ws://192.168.1.10:8123/api/shelly/ws
//
// With -http it also answers on the inbound channels a real device's web
// server offers, so curl works against it as against a device:
//
//	go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080
//	curl 'http://127.0.0.1:8080/rpc/Ws.GetConfig'
//
// See the usage text (-h) for every flag.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/redact"
)

const usageText = `Usage: simulator [flags]

A simulated Shelly device that speaks the Gen2 Outbound Websocket: a Plus
1PM by default, or any model of -profile, played from a real device's
answers (see -profile help).

Without -server and -state it runs a demo: it starts a test server on
127.0.0.1, points one simulated device at it, prints their conversation,
calls the device's own web server (on 127.0.0.1) the way curl would, and
exits. Only -id, -password, -password-file and -v apply to the demo (a Plus
1PM).

With -server (or a -state directory that holds a server) it is a device for
a real server and runs until interrupted; Ctrl-C or SIGTERM closes the
connection cleanly (status 1001), stops the -http server, and exits 0.

Flags:
  -server URL    ws:// or wss:// URL to dial, verbatim (path and query
                 included); sets enable to true
  -id ID         device id, <model prefix>-<12 hex digits>: the src of its
                 frames, the id of Shelly.GetDeviceInfo and GET /shelly, the
                 auth realm; sys.mac is the upper-cased hex part. Its prefix
                 picks the model (the first profile with it in -profile
                 help); with -profile it must be an id of the first profile,
                 in the model's style (e.g. ShellyWallDisplay-<MAC
                 upper-case>). Default: the first profile's prefix and 12
                 random hex digits
  -profile LIST  comma-separated models to play: built-in names (e.g.
                 plus1pm-gen2, pro3em-gen2, plus2pm-gen2-cover) or paths to
                 dump files of the same format (a path holds a / or ends in
                 .json). With -devices N, device i plays profile i mod the
                 number of profiles, with MACs counting up from -id's (a
                 random base without -id). Default: plus1pm-gen2.
                 -profile help lists the built-in profiles and exits
  -telemetry DUR readings (power, voltage, current, energy, temperature,
                 humidity, illuminance) drift and are pushed as NotifyStatus
                 every DUR, e.g. 10s, as metering devices do (default: off,
                 readings stay at the dump's values)
  -boot-time DUR how long a rebooted device takes to come back (default 1s)
  -update-stable VER
                 offer firmware VER as the stable update
                 (sys.available_updates, Shelly.CheckForUpdate); '' offers
                 none. Default: what the model's dump offers. Shelly.Update
                 {"stage":"stable"} then installs it: ota_begin,
                 ota_progress, ota_success, a reboot into ver VER, kept
                 with -state
  -update-beta VER
                 the same for the beta stage
  -ota-time DUR  how long Shelly.Update takes from ota_begin to the reboot
                 (default 10s). Shelly.Update {"url":...} GETs the url
                 (body discarded): an error or a non-2xx answer ends in
                 ota_error and no reboot
  -wakeup-period DUR
                 the period of the models that sleep: those whose dump has
                 a wakeup_period (plusht-gen2, ht-gen3, plussmoke-gen2,
                 flood-gen4) wake every DUR, counted from falling asleep,
                 reported in whole seconds as sys.wakeup_period (default:
                 the dump's); -wakeup-period 0 keeps them always on. Other
                 models stay always on; without a model that sleeps the
                 flag is an error. A sleeping device dials at once on each
                 wake, sends its full status, stays awake while it is
                 asked things, then sends a sleep event, closes with 1000,
                 and sleeps: it dials nothing and its -http server refuses
                 connections. With -devices N the first wakes are spread
                 evenly over the period. -telemetry does not apply to it:
                 its readings move from one wake to the next
  -awake-idle DUR
                 a sleeping device falls asleep after DUR without a
                 request on any channel (default 3s)
  -awake-max DUR a sleeping device's wake lasts at most DUR (default 60s)
  -ssl-ca VALUE  how a wss:// server's certificate is verified:
                   ca.pem       system roots (the default)
                   user_ca.pem  the CA in the -user-ca file
                   *            no verification
                   ''           null, verifies like ca.pem
  -user-ca FILE  PEM file with the CA for -ssl-ca user_ca.pem; read again at
                 every dial, as a device reads its uploaded user CA
  -state DIR     keep each device's ws config in DIR/<id>.ws.json so that
                 what a server changes with Ws.SetConfig survives a restart;
                 without -id the id is kept in DIR/id as well. The stored
                 config wins, except that -server and -ssl-ca given on the
                 command line override it (and are saved).
                 Without -state the config lives in memory.
  -devices N     run N devices in one process (default 1), with ids derived
                 from -id by counting up its MAC; prints a status line every
                 5 s instead of each device's events; with -shard, N
                 devices per shard
  -http ADDR     also serve the inbound channels of a device's web server
                 on ADDR, HOST:PORT (off by default): GET /rpc/<Method>?...,
                 POST /rpc/<Method>, POST /rpc with a whole request frame,
                 websocket GET /rpc and GET /shelly, so that
                   curl 'http://127.0.0.1:8080/rpc/Ws.GetConfig'
                 works as against a real device. Port 0 picks a free port;
                 the address is printed. With -devices N, device i listens
                 on PORT+i (with port 0, each on a free port of its own).
                 Without -password (or a Shelly.SetAuth from a server)
                 there is no authentication, as on a device: prefer
                 127.0.0.1:PORT to :PORT unless the network is yours.
                 Only here (GET or POST /rpc/Sim.Input, POST /rpc), never on
                 the outbound connection, the simulator's control method
                 Sim.Input {"id":N,"event":"single_push"} (also double_push,
                 long_push, btn_down, btn_up) makes input:N emit that event
  -password PASS turn authentication on with PASS for user admin, as
                 Shelly.SetAuth would (realm: the device id; only its hash
                 is kept). The -http channels then ask for it, e.g.
                   curl --digest -u admin:PASS 'http://127.0.0.1:8080/rpc/Ws.GetConfig'
                 and Shelly.GetDeviceInfo reports auth_en. With -devices N
                 every device gets PASS, each in its own realm. With -state
                 the auth state is kept in DIR/<id>.auth.json like the ws
                 config: -password overrides it (and is saved), '' turns
                 it off. In the demo, the password the server sets.
                 Every local user sees PASS in ps and /proc; prefer
                 -password-file
  -password-file FILE
                 like -password, with the password read from the first
                 line of FILE (its line ending dropped; an empty line is an
                 error). Safer than -password: the command line, which ps
                 shows every user of the machine, holds only the file's
                 name, and FILE can be readable by you alone (chmod 600).
                 Not with -password
  -local-addr CIDR
                 dial from source addresses of CIDR, spread over the
                 devices: device i of the process dials from host address
                 i mod H of the prefix, e.g. 127.0.0.0/24 gives
                 127.0.0.1 … 127.0.0.254 (H = 254; IPv4 skips the network
                 and broadcast addresses up to /30). Each source address
                 has its own ephemeral ports, so one process can hold more
                 than the ~28,000 connections one address allows to one
                 server. The addresses must be on this machine (all of
                 127.0.0.0/8 is, on Linux).
  -shard INDEX/COUNT
                 run part INDEX (0 … COUNT-1) of a fleet split over COUNT
                 processes; -devices N is per shard: shard k runs device
                 numbers k*N … k*N+N-1, ids derived from -id (required) as
                 with -devices. "/COUNT" takes INDEX from
                 $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod)
  -metrics ADDR  serve Prometheus metrics on http://ADDR/metrics and Go's
                 pprof on http://ADDR/debug/pprof/ (off by default; port 0
                 picks a free port, printed): devices by state, connects,
                 disconnects and failed dials (with reasons), notifications,
                 requests by method with a latency histogram. No
                 authentication: pprof shows the process's memory, so keep
                 ADDR on 127.0.0.1 or a network that is yours
  -udp ADDR      also serve UDP RPC (protocol section 16.2) on ADDR,
                 HOST:PORT (off by default): one request frame per
                 datagram, one reply datagram to the sender, e.g.
                   {"id":0,"method":"EM.GetStatus","params":{"id":0}}
                 as home batteries read a Pro 3EM; sys.rpc_udp.listen_port
                 is set to PORT (Sys.SetConfig may change it, for the next
                 boot). Port 0 picks a free port; the address is printed.
                 With -devices N, device i listens on PORT+i (with port 0,
                 each on a free port of its own). With a password set,
                 requests need the frame's auth object
  -mqtt HOST:PORT
                 also connect each device to the MQTT broker HOST:PORT
                 (plain TCP) as a client of its own (protocol section
                 16.3): mqtt.server is set to it and enable to true; the
                 device answers requests on <prefix>/rpc, publishes
                 <prefix>/online and its notifications, with the rest of
                 the mqtt config from the model's dump (topic_prefix null:
                 the device id)
  -mqtt-user USER
                 the user name the devices give the broker (with -mqtt)
  -mqtt-pass-file FILE
                 the broker password, read from the first line of FILE
                 (with -mqtt). There is no -mqtt-pass: a password on the
                 command line shows in ps and /proc to every local user
  -mdns IFACE    announce every device over mDNS (_shelly._tcp and
                 _http._tcp, as real devices answer) on the interface IFACE
                 only, with one responder for the whole process; needs
                 -http, whose port the records point at. Off by default,
                 never on an interface that was not named
  -v             debug logging to stderr

Environment: with -devices above 1000 the simulator runs with GOGC=5 once
the fleet has connected (the heap grows by 5 % before a collection, not
double) and Go's default GOGC=100 while 1 % or more of the fleet is dialing,
unless GOGC is set; in a container also set GOMEMLIMIT to about 90% of its
memory limit.

Exit status: 0 when done or interrupted, 1 on failure (e.g. the -http port
is taken), 2 for invalid flags (an -http address that is not HOST:PORT or not
an address of this machine included).

Examples:
  go run ./cmd/shellyws-sim
  go run ./cmd/shellyws-sim -server ws://192.168.1.10:8123/api/shelly/ws
  go run ./cmd/shellyws-sim -server 'wss://fm.example/shelly?token=T' -ssl-ca '*'
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -http 127.0.0.1:8080 -password PASS
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -devices 100 -state ./sim
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -devices 30 \
      -profile plus1pm-gen2,pro3em-gen2,plus2pm-gen2-cover -telemetry 10s
  go run ./cmd/shellyws-sim -profile help
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -profile pro3em-gen2 -udp 127.0.0.1:1010
  go run ./cmd/shellyws-sim -server ws://127.0.0.1:8765/shelly -mqtt 127.0.0.1:1883 -devices 10
  simulator -server ws://127.0.0.1:8765/shelly -id shellyplus1pm-000000000000 \
      -devices 50000 -shard 3/10 -local-addr 127.0.0.0/24 -metrics 127.0.0.1:9090
`

// maxDevices bounds -devices: the library is built for 10,000 devices in one
// process, and the operating system's file limits bite somewhere after.
const maxDevices = 100000

// settings are the parsed flags.
type settings struct {
	server    string
	serverSet bool
	id        string
	idSet     bool
	sslCA     *string // nil for null
	sslCASet  bool
	userCA    string
	stateDir  string
	devices   int
	httpAddr  string // "" without -http
	verbose   bool

	password    string // -password or -password-file's; see openAuthStore in devices.go
	passwordSet bool
	profiles    []*device.Model // never empty after parseFlags
	profileSet  bool
	profileHelp bool // -profile help
	telemetry   time.Duration
	bootTime    time.Duration
	localAddr   string      // -local-addr as given, "" without
	localAddrs  *localAddrs // parsed -local-addr, nil without
	shard       shard       // 0/1 without -shard
	metricsAddr string      // "" without -metrics
	udpAddr     string      // "" without -udp
	mqttServer  string      // "" without -mqtt
	mqttUser    string
	mqttPass    string // from -mqtt-pass-file
	mdnsIface   string // "" without -mdns

	wakeupPeriod time.Duration // device.Options.WakeupPeriod: 0 the model's, <0 never sleep
	awakeIdle    time.Duration
	awakeMax     time.Duration

	updateStable, updateBeta *string // nil without -update-stable, -update-beta
	otaTime                  time.Duration
}

// Bounds of the duration flags.
const (
	minTelemetry = 100 * time.Millisecond
	maxTelemetry = 24 * time.Hour
	maxBootTime  = 10 * time.Minute
	maxWakeup    = 7 * 24 * time.Hour
	maxAwake     = time.Hour
	minOTATime   = 100 * time.Millisecond
	maxOTATime   = time.Hour
)

// The library's defaults of WithAwakeIdle and WithAwakeMax, the flags'
// defaults.
const (
	defaultAwakeIdle = 3 * time.Second
	defaultAwakeMax  = 60 * time.Second
)

// readPasswordFile returns the first line of path, given by flag
// (-password-file, -mqtt-pass-file), without its line ending. Its errors
// never quote the file's contents.
func readPasswordFile(flag, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", usageErr("%s: %v", flag, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usageErr("%s %s: the first line is empty; write the password there", flag, path)
	}
	return line, nil
}

// demo reports whether the flags ask for the embedded demo.
func (s *settings) demo() bool { return !s.serverSet && s.stateDir == "" }

// usageError is an invalid command line; run exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// parseFlags parses and validates args. Every problem is a *usageError, or
// flag.ErrHelp for -h.
func parseFlags(args []string) (*settings, error) {
	fs := flag.NewFlagSet("simulator", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed by run, with one hint
	fs.Usage = func() {}
	s := &settings{}
	sslCA := shellyws.SSLCABuiltin
	fs.StringVar(&s.server, "server", "", "")
	fs.StringVar(&s.id, "id", "", "")
	fs.StringVar(&sslCA, "ssl-ca", shellyws.SSLCABuiltin, "")
	fs.StringVar(&s.userCA, "user-ca", "", "")
	fs.StringVar(&s.stateDir, "state", "", "")
	fs.IntVar(&s.devices, "devices", 1, "")
	fs.StringVar(&s.httpAddr, "http", "", "")
	fs.BoolVar(&s.verbose, "v", false, "")
	fs.StringVar(&s.password, "password", "", "")
	passwordFile := fs.String("password-file", "", "")
	profiles := profile.Default
	fs.StringVar(&profiles, "profile", profile.Default, "")
	fs.DurationVar(&s.telemetry, "telemetry", 0, "")
	fs.DurationVar(&s.bootTime, "boot-time", device.DefaultBootTime, "")
	fs.StringVar(&s.localAddr, "local-addr", "", "")
	shardFlag := fs.String("shard", "", "")
	fs.StringVar(&s.metricsAddr, "metrics", "", "")
	fs.StringVar(&s.udpAddr, "udp", "", "")
	fs.StringVar(&s.mqttServer, "mqtt", "", "")
	fs.StringVar(&s.mqttUser, "mqtt-user", "", "")
	mqttPassFile := fs.String("mqtt-pass-file", "", "")
	fs.StringVar(&s.mdnsIface, "mdns", "", "")
	fs.DurationVar(&s.wakeupPeriod, "wakeup-period", 0, "")
	fs.DurationVar(&s.awakeIdle, "awake-idle", defaultAwakeIdle, "")
	fs.DurationVar(&s.awakeMax, "awake-max", defaultAwakeMax, "")
	updateStable := fs.String("update-stable", "", "")
	updateBeta := fs.String("update-beta", "", "")
	fs.DurationVar(&s.otaTime, "ota-time", device.DefaultOTATime, "")
	err := fs.Parse(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	s.serverSet, s.idSet, s.sslCASet = set["server"], set["id"], set["ssl-ca"]
	s.passwordSet = set["password"] || set["password-file"]
	if set["password-file"] {
		if set["password"] {
			return nil, usageErr("-password and -password-file: give one of them")
		}
		if s.password, err = readPasswordFile("-password-file", *passwordFile); err != nil {
			return nil, err
		}
	}
	s.profileSet = set["profile"]
	if profiles == "help" {
		s.profileHelp = true
		return s, nil
	}
	for _, ref := range strings.Split(profiles, ",") {
		p, err := profile.Lookup(strings.TrimSpace(ref))
		if err != nil {
			return nil, usageErr("-profile %q: %v", ref, err)
		}
		s.profiles = append(s.profiles, p)
	}
	if set["telemetry"] && (s.telemetry < minTelemetry || s.telemetry > maxTelemetry) {
		return nil, usageErr("-telemetry %v: want %v to %v (leave it out for no telemetry)", s.telemetry, minTelemetry, maxTelemetry)
	}
	if s.bootTime <= 0 || s.bootTime > maxBootTime {
		return nil, usageErr("-boot-time %v: want more than 0 and at most %v", s.bootTime, maxBootTime)
	}
	if set["wakeup-period"] {
		if s.wakeupPeriod < 0 || s.wakeupPeriod > maxWakeup {
			return nil, usageErr("-wakeup-period %v: want 0 (always on) to %v", s.wakeupPeriod, maxWakeup)
		}
		if s.wakeupPeriod == 0 {
			s.wakeupPeriod = -1 // always on, whatever the model
		}
	}
	for _, f := range []struct {
		name string
		val  *string
		dst  **string
	}{{"update-stable", updateStable, &s.updateStable}, {"update-beta", updateBeta, &s.updateBeta}} {
		if !set[f.name] {
			continue
		}
		if err := device.CheckVersion(*f.val); err != nil {
			return nil, usageErr("-%s %q: %v ('' offers none)", f.name, *f.val, err)
		}
		*f.dst = f.val
	}
	if s.otaTime < minOTATime || s.otaTime > maxOTATime {
		return nil, usageErr("-ota-time %v: want %v to %v", s.otaTime, minOTATime, maxOTATime)
	}
	if s.awakeIdle <= 0 || s.awakeIdle > maxAwake {
		return nil, usageErr("-awake-idle %v: want more than 0 and at most %v", s.awakeIdle, maxAwake)
	}
	if s.awakeMax <= 0 || s.awakeMax > maxAwake {
		return nil, usageErr("-awake-max %v: want more than 0 and at most %v", s.awakeMax, maxAwake)
	}

	if s.serverSet {
		cfg := shellyws.Config{Enable: true, Server: &s.server}
		if err := cfg.Validate(); err != nil {
			msg := strings.TrimPrefix(shellyws.AsError(err).Message, "Invalid argument 'server': ")
			return nil, usageErr("-server %q: %s", s.server, msg)
		}
	}
	switch sslCA {
	case shellyws.SSLCABuiltin, shellyws.SSLCAUser, shellyws.SSLCAInsecure:
		s.sslCA = &sslCA
	case "":
		s.sslCA = nil
	default:
		return nil, usageErr("-ssl-ca %q: want ca.pem, user_ca.pem, * or ''", sslCA)
	}
	if s.devices < 1 || s.devices > maxDevices {
		return nil, usageErr("-devices %d: want 1 to %d", s.devices, maxDevices)
	}
	if set["http"] {
		if err := checkPortRange("-http", s.httpAddr, "127.0.0.1:8080 (:8080 for every interface)", s.devices); err != nil {
			return nil, err
		}
	}
	if s.userCA != "" {
		pem, err := os.ReadFile(s.userCA)
		if err != nil {
			return nil, usageErr("-user-ca: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, usageErr("-user-ca %s: no PEM certificate in it", s.userCA)
		}
	}
	if s.sslCASet && sslCA == shellyws.SSLCAUser && s.userCA == "" {
		return nil, usageErr("-ssl-ca user_ca.pem needs -user-ca FILE")
	}
	s.shard = shard{index: 0, count: 1}
	if set["shard"] {
		if !s.idSet {
			return nil, usageErr("-shard needs -id: every shard derives its ids from the same base id")
		}
		if s.shard, err = parseShard(*shardFlag, s.devices, envOrEmpty); err != nil {
			return nil, err
		}
	}
	if set["local-addr"] {
		if s.localAddrs, err = parseLocalAddr(s.localAddr); err != nil {
			return nil, err
		}
		if err := s.localAddrs.checkBindable(s.localAddr, s.devices); err != nil {
			return nil, err
		}
	}
	if set["metrics"] {
		if _, _, err := net.SplitHostPort(s.metricsAddr); err != nil {
			return nil, usageErr("-metrics %q: want HOST:PORT, e.g. 127.0.0.1:9090", s.metricsAddr)
		}
	}
	if err := s.parseChannelFlags(set, *mqttPassFile); err != nil {
		return nil, err
	}
	if s.demo() {
		for _, name := range []string{"ssl-ca", "user-ca", "devices", "http", "profile", "telemetry", "boot-time", "local-addr", "shard", "metrics", "wakeup-period", "awake-idle", "awake-max", "update-stable", "update-beta", "ota-time", "udp", "mqtt", "mqtt-user", "mqtt-pass-file", "mdns"} {
			if set[name] {
				return nil, usageErr("-%s needs -server or -state; the demo takes only -id, -password, -password-file and -v", name)
			}
		}
	}
	if err := s.fitID(); err != nil {
		return nil, err
	}
	if set["wakeup-period"] {
		if err := s.checkSleepers(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program, returning its exit status; tests call it.
// Everything it prints but the usage text goes through a redacting writer
// (internal/redact): no password, ha1, URL user info or URL query value
// reaches the output, whoever prints it.
func run(args []string, stdout, stderr io.Writer) int {
	s, err := parseFlags(args)
	help := stdout
	stdout, stderr = redact.Writer(stdout), redact.Writer(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(help, usageText)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "simulator: %v\nRun 'simulator -h' for usage.\n", err)
		return 2
	case s.profileHelp:
		printProfiles(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s.demo() {
		if err := runDemo(ctx, s, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "simulator: demo failed: %v\n", err)
			return 1
		}
		return 0
	}
	return runDevices(ctx, s, stdout, stderr)
}

// printProfiles lists the built-in profiles for -profile help.
func printProfiles(w io.Writer) {
	fmt.Fprintf(w, "Built-in profiles (-profile NAME[,NAME...]), from real devices' answers:\n\n")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tMODEL\tAPP\tGEN\tFIRMWARE\tID\n")
	for _, name := range profile.Names() {
		p, err := profile.Builtin(name)
		if err != nil {
			fmt.Fprintf(tw, "%s\t(broken: %v)\n", name, err)
			continue
		}
		app := p.App
		if p.Profile != "" {
			app += " (" + p.Profile + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", name, p.Model, app, p.Gen, p.Ver, p.ID("xxxxxxxxxxxx"))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nDefault: %s. Sources and licenses: device/profile/dumps/README.md.\n", profile.Default)
}
