package device

import (
	"context"
	"math"
	"time"

	"github.com/shellyws/shellyws"
)

// Identity of the simulated firmware. The fw_id date matters: Home Assistant
// calls Shelly.GetComponents during set-up only for firmware built on
// 2024-02-13 or later, and a device must answer it then.
const (
	// Model is the model code a Plus 1PM reports in Shelly.GetDeviceInfo.
	Model = "SNSW-001P16EU"
	// App is the application name of the Plus 1PM firmware.
	App = "Plus1PM"
	// FirmwareVersion is the firmware version the device reports as ver.
	FirmwareVersion = "1.4.4"
	// FirmwareID is the build id the device reports as fw_id.
	FirmwareID = "20241011-114455/1.4.4-g6d2a586"
)

// Figures of a real Plus 1PM, so that dashboards show plausible values.
const (
	ramSize = 260728
	ramFree = 122072
	fsSize  = 458752
	fsFree  = 135168

	// ESP32 reset reasons: power-on for the first boot, software reset
	// after Shelly.Reboot.
	resetPowerOn  = 1
	resetSoftware = 3
)

// componentKeys are the device's components in the order Shelly.GetComponents
// lists them (sorted, as the firmware does).
var componentKeys = []string{"ble", "cloud", "input:0", "mqtt", "switch:0", "sys", "wifi", "ws"}

// DeviceInfo is the result of Shelly.GetDeviceInfo, in the firmware's key
// order.
type DeviceInfo struct {
	Name       *string `json:"name"`
	ID         string  `json:"id"`
	MAC        string  `json:"mac"`
	Slot       int     `json:"slot"`
	Model      string  `json:"model"`
	Gen        int     `json:"gen"`
	FWID       string  `json:"fw_id"`
	Ver        string  `json:"ver"`
	App        string  `json:"app"`
	AuthEn     bool    `json:"auth_en"`
	AuthDomain *string `json:"auth_domain"`
}

// The status objects are structs rather than maps: Shelly.GetStatus of
// thousands of devices in one process should cost little to build and encode.

type sysStatus struct {
	MAC              string   `json:"mac"`
	RestartRequired  bool     `json:"restart_required"`
	Time             string   `json:"time"`
	Unixtime         int64    `json:"unixtime"`
	Uptime           int64    `json:"uptime"`
	RAMSize          int      `json:"ram_size"`
	RAMFree          int      `json:"ram_free"`
	FSSize           int      `json:"fs_size"`
	FSFree           int      `json:"fs_free"`
	CfgRev           int      `json:"cfg_rev"`
	KVSRev           int      `json:"kvs_rev"`
	ScheduleRev      int      `json:"schedule_rev"`
	WebhookRev       int      `json:"webhook_rev"`
	AvailableUpdates struct{} `json:"available_updates"`
	ResetReason      int      `json:"reset_reason"`
}

type wifiStatus struct {
	StaIP  string `json:"sta_ip"`
	Status string `json:"status"`
	SSID   string `json:"ssid"`
	RSSI   int    `json:"rssi"`
}

type connectedStatus struct {
	Connected bool `json:"connected"`
}

type aenergy struct {
	Total    float64    `json:"total"`
	ByMinute [3]float64 `json:"by_minute"`
	MinuteTS int64      `json:"minute_ts"`
}

type temperature struct {
	TC float64 `json:"tC"`
	TF float64 `json:"tF"`
}

type switchStatus struct {
	ID             int         `json:"id"`
	Source         string      `json:"source"`
	Output         bool        `json:"output"`
	TimerStartedAt *float64    `json:"timer_started_at,omitempty"`
	TimerDuration  *float64    `json:"timer_duration,omitempty"`
	APower         float64     `json:"apower"`
	Voltage        float64     `json:"voltage"`
	Current        float64     `json:"current"`
	AEnergy        aenergy     `json:"aenergy"`
	Temperature    temperature `json:"temperature"`
}

type inputStatus struct {
	ID    int  `json:"id"`
	State bool `json:"state"`
}

// interval is a stretch of time during which the relay was on.
type interval struct{ from, to time.Time }

// switchState is the relay and its metering; guarded by Device.mu.
type switchState struct {
	output bool
	source string

	timer      *time.Timer // the toggle_after timer, nil when none runs
	timerStart time.Time
	timerDur   time.Duration

	energyWh float64    // energy of the closed on-intervals
	onSince  time.Time  // start of the open on-interval; zero while off
	recent   []interval // closed on-intervals of the last minutes, for by_minute
}

// byMinuteWindow is how far back by_minute looks; older intervals are pruned.
const byMinuteWindow = 5 * time.Minute

// setOutput switches the relay at now, closing or opening an on-interval.
func (s *switchState) setOutput(on bool, now time.Time, load float64) {
	if on == s.output {
		return
	}
	if on {
		s.onSince = now
	} else {
		s.energyWh += load * now.Sub(s.onSince).Hours()
		s.recent = append(s.recent, interval{s.onSince, now})
		s.onSince = time.Time{}
	}
	s.output = on
	// Prune in place: switch changes are rare, so this stays tiny.
	keep := s.recent[:0]
	for _, iv := range s.recent {
		if now.Sub(iv.to) < byMinuteWindow {
			keep = append(keep, iv)
		}
	}
	s.recent = keep
}

// energyWhBetween returns the energy drawn in [a, b).
func (s *switchState) energyWhBetween(a, b, now time.Time, load float64) float64 {
	overlap := func(from, to time.Time) time.Duration {
		if from.Before(a) {
			from = a
		}
		if to.After(b) {
			to = b
		}
		if to.Before(from) {
			return 0
		}
		return to.Sub(from)
	}
	var d time.Duration
	for _, iv := range s.recent {
		d += overlap(iv.from, iv.to)
	}
	if s.output {
		d += overlap(s.onSince, now)
	}
	return load * d.Hours()
}

// round rounds x to n decimals, as the firmware reports measurements.
func round(x float64, n int) float64 {
	p := math.Pow10(n)
	return math.Round(x*p) / p
}

// unixTS renders t as the firmware's seconds with two decimals.
func unixTS(t time.Time) float64 {
	return round(float64(t.UnixMilli())/1000, 2)
}

// The builders below run with d.mu held and compute everything from the
// clock on demand: the simulator has no per-device tickers.

func (d *Device) sysStatusLocked(now time.Time) sysStatus {
	return sysStatus{
		MAC:             d.mac,
		RestartRequired: d.restartRequired,
		Time:            now.UTC().Format("15:04"),
		Unixtime:        now.Unix(),
		Uptime:          int64(now.Sub(d.bootTime) / time.Second),
		RAMSize:         ramSize,
		RAMFree:         ramFree,
		FSSize:          fsSize,
		FSFree:          fsFree,
		CfgRev:          d.cfgRev,
		ResetReason:     d.resetReason,
	}
}

func (d *Device) switchStatusLocked(now time.Time) switchStatus {
	s := &d.sw
	st := switchStatus{
		ID:      0,
		Source:  s.source,
		Output:  s.output,
		Voltage: d.voltage,
	}
	if s.timer != nil {
		at, dur := unixTS(s.timerStart), s.timerDur.Seconds()
		st.TimerStartedAt, st.TimerDuration = &at, &dur
	}
	tC := d.ambientC
	if s.output {
		st.APower = d.load
		st.Current = round(d.load/d.voltage, 3)
		tC += d.load / 20
	}
	st.Temperature = temperature{TC: round(tC, 1), TF: round(tC*9/5+32, 1)}

	total := s.energyWh
	if s.output {
		total += d.load * now.Sub(s.onSince).Hours()
	}
	// minute_ts is the first second of the last complete minute; by_minute
	// holds that minute and the two before it, in mWh, newest first.
	last := now.Truncate(time.Minute).Add(-time.Minute)
	st.AEnergy = aenergy{Total: round(total, 3), MinuteTS: last.Unix()}
	for i := range st.AEnergy.ByMinute {
		from := last.Add(-time.Duration(i) * time.Minute)
		st.AEnergy.ByMinute[i] = round(1000*s.energyWhBetween(from, from.Add(time.Minute), now, d.load), 3)
	}
	return st
}

func (d *Device) wifiStatus() wifiStatus {
	return wifiStatus{StaIP: d.staIP, Status: "got ip", SSID: simulatedSSID, RSSI: d.rssi}
}

// simulatedSSID is the network the simulated device pretends to be on.
const simulatedSSID = "Simulated-WiFi"

// wsStatus is the component's status, the same on every channel: the
// component marks itself connected before it reads the first request of a
// connection, so a request on the outbound connection sees "connected":
// true (unless that connection is closing), and one on an inbound channel
// (shellyws.Handler) sees whether the outbound connection is up.
func (d *Device) wsStatus(context.Context) shellyws.Status {
	return d.comp.GetStatus()
}

// statusOf returns the status of one component; ok is false for an unknown
// key.
func (d *Device) statusOf(ctx context.Context, key string) (v any, ok bool) {
	switch key {
	case "ws":
		return d.wsStatus(ctx), true
	case "ble":
		return struct{}{}, true
	case "cloud", "mqtt":
		return connectedStatus{}, true
	case "wifi":
		return d.wifiStatus(), true
	case "input:0":
		return inputStatus{ID: 0}, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	switch key {
	case "sys":
		return d.sysStatusLocked(now), true
	case "switch:0":
		return d.switchStatusLocked(now), true
	}
	return nil, false
}

// Status returns the whole device status, the object Shelly.GetStatus answers
// and NotifyFullStatus carries: one entry per component, "ws" included.
func (d *Device) Status() map[string]any { return d.status(context.Background()) }

func (d *Device) status(ctx context.Context) map[string]any {
	ws := d.wsStatus(ctx)
	d.mu.Lock()
	now := d.now()
	sys := d.sysStatusLocked(now)
	sw := d.switchStatusLocked(now)
	d.mu.Unlock()
	return map[string]any{
		"ble":      struct{}{},
		"cloud":    connectedStatus{},
		"input:0":  inputStatus{ID: 0},
		"mqtt":     connectedStatus{},
		"switch:0": sw,
		"sys":      sys,
		"wifi":     d.wifiStatus(),
		"ws":       ws,
	}
}

// configOf returns the config of one component; ok is false for an unknown
// key. Configs are maps: they are asked for rarely and read like the
// firmware's JSON.
func (d *Device) configOf(key string) (v any, ok bool) {
	switch key {
	case "ws":
		return d.comp.GetConfig(), true
	case "ble":
		return map[string]any{
			"enable":   true,
			"rpc":      map[string]any{"enable": true},
			"observer": map[string]any{"enable": false},
		}, true
	case "cloud":
		return map[string]any{"enable": false, "server": "iot.shelly.cloud:6012/jrpc"}, true
	case "mqtt":
		return map[string]any{
			"enable": false, "server": nil, "client_id": d.id, "user": nil,
			"ssl_ca": nil, "topic_prefix": d.id, "rpc_ntf": true, "status_ntf": false,
			"use_client_cert": false, "enable_rpc": true, "enable_control": true,
		}, true
	case "wifi":
		return map[string]any{
			"ap": map[string]any{
				"ssid": IDPrefix + "-" + d.mac, "is_open": true, "enable": false,
				"range_extender": map[string]any{"enable": false},
			},
			"sta": map[string]any{
				"ssid": simulatedSSID, "is_open": false, "enable": true, "ipv4mode": "dhcp",
				"ip": nil, "netmask": nil, "gw": nil, "nameserver": nil,
			},
			"sta1": map[string]any{
				"ssid": nil, "is_open": true, "enable": false, "ipv4mode": "dhcp",
				"ip": nil, "netmask": nil, "gw": nil, "nameserver": nil,
			},
			"roam": map[string]any{"rssi_thr": -80, "interval": 60},
		}, true
	case "switch:0":
		return map[string]any{
			"id": 0, "name": nil, "in_mode": "flip", "initial_state": "restore_last",
			"auto_on": false, "auto_on_delay": 60.0, "auto_off": false, "auto_off_delay": 60.0,
			"autorecover_voltage_errors": false, "power_limit": 4480, "voltage_limit": 280,
			"undervoltage_limit": 0, "current_limit": 16.0,
		}, true
	case "input:0":
		return map[string]any{
			"id": 0, "name": nil, "type": "switch", "enable": true, "invert": false, "factory_reset": true,
		}, true
	case "sys":
		d.mu.Lock()
		rev := d.cfgRev
		d.mu.Unlock()
		return map[string]any{
			"device": map[string]any{
				"name": nil, "mac": d.mac, "fw_id": FirmwareID,
				"discoverable": true, "eco_mode": false, "addon_type": nil,
			},
			"location": map[string]any{"tz": "UTC", "lat": nil, "lon": nil},
			"debug": map[string]any{
				"level": 2, "file_level": nil,
				"mqtt":      map[string]any{"enable": false},
				"websocket": map[string]any{"enable": false},
				"udp":       map[string]any{"addr": nil},
			},
			"ui_data": map[string]any{},
			"rpc_udp": map[string]any{"dst_addr": nil, "listen_port": nil},
			"sntp":    map[string]any{"server": "time.google.com"},
			"cfg_rev": rev,
		}, true
	}
	return nil, false
}

// config returns the whole device config, as Shelly.GetConfig answers it.
func (d *Device) config() map[string]any {
	m := make(map[string]any, len(componentKeys))
	for _, k := range componentKeys {
		m[k], _ = d.configOf(k)
	}
	return m
}

// deviceInfo returns the result of Shelly.GetDeviceInfo.
func (d *Device) deviceInfo() DeviceInfo {
	auth := d.comp.AuthInfo() // on once a password is set (Shelly.SetAuth, -password)
	return DeviceInfo{
		ID: d.id, MAC: d.mac, Model: Model, Gen: 2,
		FWID: FirmwareID, Ver: FirmwareVersion, App: App,
		AuthEn: auth.Enabled, AuthDomain: auth.Domain,
	}
}
