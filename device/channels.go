package device

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
	"github.com/shellyws/shellyws/mqtt"
)

// The UDP and MQTT channels of a device (protocol section 16): which a
// device runs, and from what config. A device given no ChannelOptions has
// neither: no goroutine, no socket, no buffer.

// Sources of a change asked over the channels of section 16.
const (
	// SourceUDP is the source of a change requested over UDP RPC.
	SourceUDP = "UDP_in"
	// SourceMQTT is the source of a change requested over MQTT.
	SourceMQTT = "MQTT"
)

// ChannelOptions turn on the UDP and MQTT channels of a device. Each is
// opt-in: the dumps hold configs recorded on real networks (nine a
// sys.rpc_udp.listen_port of 8585, two an enabled mqtt with their own
// broker), which a simulated device shows but acts on only when told to.
type ChannelOptions struct {
	// UDP, "HOST:PORT", serves UDP RPC on HOST (section 16.2): PORT is
	// stored as sys.rpc_udp.listen_port at New (port 0 picks a free
	// one), and at each boot the device listens on HOST and the stored
	// listen_port, which Sys.SetConfig may change for the next boot.
	// Default: "", the device never listens on UDP.
	UDP string
	// MQTT runs the MQTT channel (section 16.3): at each boot an enabled
	// mqtt config connects to its server. Default: false, the config is
	// kept and shown, never dialled.
	MQTT bool
	// MQTTServer, if set, is stored at New as mqtt.server with enable
	// true and ssl_ca null (plain TCP), as -mqtt does; it implies MQTT.
	MQTTServer string
	// MQTTUser and MQTTPass, if set, are stored at New as mqtt.user and
	// the write-only mqtt.pass.
	MQTTUser, MQTTPass string
	// MQTTOptions are given to every mqtt.New, e.g. mqtt.WithBackoff or
	// mqtt.WithLogger. Default: none (the device's Logger is added).
	MQTTOptions []mqtt.Option
}

func (o ChannelOptions) enabled() bool {
	return o.UDP != "" || o.MQTT || o.MQTTServer != ""
}

// channelState is a device's channels: what it was told, and what runs
// between a boot and the next time it goes down.
type channelState struct {
	opts    ChannelOptions
	udpHost string

	mu     sync.Mutex
	parent context.Context // Run's or Start's
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mqtt   atomic.Pointer[mqtt.Client] // while up with MQTT on
	udp    atomic.Pointer[net.UDPAddr] // where it listens while up
}

// openChannels applies o to the device's stored config (New, before the
// device is shared).
func (d *Device) openChannels(o ChannelOptions) error {
	if !o.enabled() {
		return nil
	}
	cs := &channelState{opts: o}
	if o.MQTTServer != "" {
		cs.opts.MQTT = true
		cfg := jsonv.Object{Keys: []string{"enable", "server", "ssl_ca"}, Vals: []jsonv.Value{true, o.MQTTServer, nil}}
		if o.MQTTUser != "" {
			cfg.Keys, cfg.Vals = append(cfg.Keys, "user"), append(cfg.Vals, o.MQTTUser)
		}
		if o.MQTTPass != "" {
			cfg.Keys, cfg.Vals = append(cfg.Keys, "pass"), append(cfg.Vals, o.MQTTPass)
		}
		if err := d.storeConfig("mqtt", &cfg); err != nil {
			return fmt.Errorf("device %s: MQTT options: %w", d.id, err)
		}
	}
	if o.UDP != "" {
		host, port, err := net.SplitHostPort(o.UDP)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || p < 0 || p > 65535 {
			return fmt.Errorf("device %s: ChannelOptions.UDP %q: want HOST:PORT", d.id, o.UDP)
		}
		if p == 0 {
			// A free port now, kept as the device's listen_port.
			conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
			if err != nil {
				return fmt.Errorf("device %s: ChannelOptions.UDP %q: %w", d.id, o.UDP, err)
			}
			p = conn.LocalAddr().(*net.UDPAddr).Port
			_ = conn.Close()
		}
		cs.udpHost = host
		rpc := &jsonv.Object{Keys: []string{"listen_port"}, Vals: []jsonv.Value{json.Number(strconv.Itoa(p))}}
		cfg := jsonv.Object{Keys: []string{"rpc_udp"}, Vals: []jsonv.Value{rpc}}
		if err := d.storeConfig("sys", &cfg); err != nil {
			return fmt.Errorf("device %s: ChannelOptions.UDP: %w", d.id, err)
		}
		d.chans = cs
		if got, _, _ := d.channelConfigs(); got != p {
			d.chans = nil
			return fmt.Errorf("device %s: ChannelOptions.UDP: the model's sys config has no rpc_udp", d.id)
		}
	}
	d.chans = cs
	return nil
}

// storeConfig merges in into the config of key and stores it, as a
// factory setting: no cfg_rev, no notification. Nothing is written when
// nothing changes.
func (d *Device) storeConfig(key string, in *jsonv.Object) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.configLocked(key)
	if cur == nil {
		return fmt.Errorf("the model has no %s config", key)
	}
	merged, err := mergeConfig(cur, in, key, "")
	if err != nil {
		return err
	}
	if merged, err = d.channelConfig(key, in, merged); err != nil {
		return err
	}
	before, _ := d.render(cur, nil)
	after, err := d.render(merged, nil)
	if err != nil || string(before) == string(after) {
		return err
	}
	doc, err := d.stateLocked()
	if err != nil {
		return err
	}
	if doc.Config == nil {
		doc.Config = map[string]json.RawMessage{}
	}
	doc.Config[key] = after
	if err := d.saveLocked(doc); err != nil {
		return err
	}
	if d.cfgOver == nil {
		d.cfgOver = map[string]*jsonv.Object{}
	}
	d.cfgOver[key] = merged
	return nil
}

// channelConfig is what the channels add to <Type>.SetConfig after the
// merge: mqtt's write-only pass, which the dumps never show, is kept; an
// enabled mqtt must have a usable server; listen_port must be a port.
func (d *Device) channelConfig(typ string, in, merged *jsonv.Object) (*jsonv.Object, error) {
	switch typ {
	case "mqtt":
		if pass, ok := in.Get("pass"); ok && !merged.Has("pass") {
			if _, isStr := pass.(string); !isStr && pass != nil {
				return nil, badType("pass", "a string or null")
			}
			merged = &jsonv.Object{Keys: append(slices.Clone(merged.Keys), "pass"), Vals: append(slices.Clone(merged.Vals), pass)}
		}
		if cfg, _ := d.mqttConfigOf(merged); cfg.Enable {
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
		}
	case "sys":
		if p, ok := merged.Object("rpc_udp").Number("listen_port"); ok && (p != float64(int(p)) || p < 0 || p > 65535) {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
				"Invalid argument 'config.rpc_udp.listen_port': must be a port from 0 to 65535, or null")
		}
	}
	return merged, nil
}

// channelRestart reports whether a config change of typ takes effect only
// at the next boot beyond restartTypes: sys.rpc_udp (section 16.2).
func channelRestart(typ string, in *jsonv.Object) bool {
	return typ == "sys" && in.Has("rpc_udp")
}

// withoutWriteOnly is the config of key as it is shown: mqtt's pass is
// never on the wire.
func withoutWriteOnly(key string, v jsonv.Value) jsonv.Value {
	o, ok := v.(*jsonv.Object)
	if key != "mqtt" || !ok || !o.Has("pass") {
		return v
	}
	out := &jsonv.Object{}
	for i, k := range o.Keys {
		if k != "pass" {
			out.Keys, out.Vals = append(out.Keys, k), append(out.Vals, o.Vals[i])
		}
	}
	return out
}

// mqttConfigOf reads an mqtt config object, rendered (the dump's MAC
// becomes the device's); keys a dump lacks take the firmware's defaults
// (rpc and rpc_ntf on, status_ntf off).
func (d *Device) mqttConfigOf(o *jsonv.Object) (mqtt.Config, error) {
	raw, err := d.render(o, nil)
	if err != nil {
		return mqtt.Config{}, err
	}
	var c struct {
		mqtt.Config
		Pass      *string `json:"pass"`
		EnableRPC *bool   `json:"enable_rpc"`
		RPCNtf    *bool   `json:"rpc_ntf"`
		StatusNtf *bool   `json:"status_ntf"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mqtt.Config{}, err
	}
	cfg := c.Config
	cfg.Pass = c.Pass
	cfg.EnableRPC = c.EnableRPC == nil || *c.EnableRPC
	cfg.RPCNtf = c.RPCNtf == nil || *c.RPCNtf
	cfg.StatusNtf = c.StatusNtf != nil && *c.StatusNtf
	return cfg, nil
}

// bootChannelsCtx remembers the context the channels run under: Run's or
// Start's.
func (d *Device) bootChannelsCtx(ctx context.Context) {
	if cs := d.chans; cs != nil {
		cs.mu.Lock()
		cs.parent = ctx
		cs.mu.Unlock()
	}
}

// channelsUp starts the channels with the stored config, as a boot does:
// the UDP listener on listen_port, the MQTT client of an enabled config.
// A channel that cannot start is logged; the device runs without it.
func (d *Device) channelsUp() {
	cs := d.chans
	if cs == nil {
		return
	}
	port, mcfg, err := d.channelConfigs()
	if err != nil {
		d.log.Error("device: channel config unusable", "err", err)
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.cancel != nil || cs.parent == nil || cs.parent.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(cs.parent)
	cs.cancel = cancel
	if cs.opts.UDP != "" && port > 0 {
		addr := net.JoinHostPort(cs.udpHost, strconv.Itoa(port))
		if conn, err := net.ListenPacket("udp", addr); err != nil {
			d.log.Error("device: cannot listen on UDP", "addr", addr, "err", err)
		} else {
			cs.udp.Store(conn.LocalAddr().(*net.UDPAddr))
			cs.wg.Go(func() {
				if err := shellyws.ServeUDP(ctx, conn, d.comp); err != nil {
					d.log.Error("device: UDP channel ended", "err", err)
				}
			})
		}
	}
	if cs.opts.MQTT && mcfg.Enable {
		opts := append([]mqtt.Option{mqtt.WithLogger(d.log), mqtt.WithStatus(deviceStatus{d})}, cs.opts.MQTTOptions...)
		cl, err := mqtt.New(d.comp, mcfg, opts...)
		if err != nil {
			d.log.Error("device: MQTT config unusable", "err", err)
			return
		}
		cs.mqtt.Store(cl)
		cs.wg.Go(func() { _ = cl.Run(ctx) })
	}
}

// channelsDown stops the channels and waits for them: the MQTT client says
// online false first, as a clean stop does.
func (d *Device) channelsDown() {
	cs := d.chans
	if cs == nil {
		return
	}
	cs.mu.Lock()
	cancel := cs.cancel
	cs.cancel = nil
	cs.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	cs.wg.Wait()
	cs.mqtt.Store(nil)
	cs.udp.Store(nil)
}

// channelConfigs reads the stored listen_port (0 for none) and mqtt config.
func (d *Device) channelConfigs() (int, mqtt.Config, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	port := 0
	if sys := d.configLocked("sys"); sys != nil {
		if p, ok := sys.Object("rpc_udp").Number("listen_port"); ok {
			port = int(p)
		}
	}
	var cfg mqtt.Config
	if m := d.configLocked("mqtt"); m != nil && d.chans.opts.MQTT {
		var err error
		if cfg, err = d.mqttConfigOf(m); err != nil {
			return 0, cfg, err
		}
	}
	return port, cfg, nil
}

// mqttStatusPatchLocked is mqtt's status: connected follows the client.
func (d *Device) mqttStatusPatchLocked() jsonv.Patch {
	connected := false
	if cs := d.chans; cs != nil {
		if cl := cs.mqtt.Load(); cl != nil {
			connected = cl.Connected()
		}
	}
	return jsonv.Patch{{Key: "connected", Val: connected}}
}

// UDPAddr returns where the device listens for UDP RPC while it is up, nil
// otherwise.
func (d *Device) UDPAddr() *net.UDPAddr {
	if cs := d.chans; cs != nil {
		return cs.udp.Load()
	}
	return nil
}

// MQTTConnected reports whether the device's MQTT client is connected.
func (d *Device) MQTTConnected() bool {
	if cs := d.chans; cs != nil {
		if cl := cs.mqtt.Load(); cl != nil {
			return cl.Connected()
		}
	}
	return false
}

// deviceStatus gives the MQTT client the whole status of components.
type deviceStatus struct{ d *Device }

func (s deviceStatus) Keys() []string { return s.d.allKeys() }

func (s deviceStatus) Status(key string) (json.RawMessage, error) {
	return s.d.componentStatus(key)
}

// UDPListen returns "HOST:PORT" where the device listens for UDP RPC while
// it is up (the stored listen_port), "" without the UDP channel or a port.
func (d *Device) UDPListen() string {
	cs := d.chans
	if cs == nil || cs.opts.UDP == "" {
		return ""
	}
	port, _, err := d.channelConfigs()
	if err != nil || port == 0 {
		return ""
	}
	return net.JoinHostPort(cs.udpHost, strconv.Itoa(port))
}

// MQTTTopicPrefix returns the prefix of the device's MQTT topics: the
// stored topic_prefix, or the device id when it is null.
func (d *Device) MQTTTopicPrefix() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m := d.configLocked("mqtt"); m != nil {
		if cfg, err := d.mqttConfigOf(m); err == nil && cfg.TopicPrefix != nil && *cfg.TopicPrefix != "" {
			return *cfg.TopicPrefix
		}
	}
	return d.id
}
