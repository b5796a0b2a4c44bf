package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/mdns"
	"github.com/shellyws/shellyws/mqtt"
)

// The flags of section 16.4: -udp, -mqtt, -mqtt-user, -mqtt-pass-file and
// -mdns, and what they make of each device.

// parseChannelFlags checks the channel flags given in set.
func (s *settings) parseChannelFlags(set map[string]bool, passFile string) error {
	if set["udp"] {
		if err := checkPortRange("-udp", s.udpAddr, "127.0.0.1:1010", s.devices); err != nil {
			return err
		}
	}
	if set["mqtt"] {
		server := s.mqttServer
		if err := (mqtt.Config{Enable: true, Server: &server}).Validate(); err != nil {
			msg := strings.TrimPrefix(shellyws.AsError(err).Message, "Invalid argument 'server': ")
			return usageErr("-mqtt %q: %s", s.mqttServer, msg)
		}
	}
	for _, name := range []string{"mqtt-user", "mqtt-pass-file"} {
		if set[name] && !set["mqtt"] {
			return usageErr("-%s needs -mqtt HOST:PORT", name)
		}
	}
	if set["mqtt-pass-file"] {
		var err error
		if s.mqttPass, err = readPasswordFile("-mqtt-pass-file", passFile); err != nil {
			return err
		}
	}
	if set["mdns"] {
		if !set["http"] {
			return usageErr("-mdns needs -http: the records point at each device's web server")
		}
		if _, err := net.InterfaceByName(s.mdnsIface); err != nil {
			return usageErr("-mdns %q: no such network interface", s.mdnsIface)
		}
	}
	return nil
}

// checkPortRange validates ADDR of flag (-http, -udp) for devices devices:
// HOST:PORT with a numeric port, and room for PORT+devices-1 when the port
// is not 0. example is a good ADDR for the error.
func checkPortRange(flag, addr, example string, devices int) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErr("%s %q: want HOST:PORT, e.g. %s", flag, addr, example)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return usageErr("%s %q: port %q is not a number from 0 to 65535", flag, addr, port)
	}
	if p != 0 && int(p)+devices-1 > 65535 {
		return usageErr("%s %q with -devices %d: device i listens on port %d+i, and port %d does not exist",
			flag, addr, devices, p, int(p)+devices-1)
	}
	return nil
}

// channelOptions are device i's UDP and MQTT channels from the flags.
func (s *settings) channelOptions(i int) device.ChannelOptions {
	var o device.ChannelOptions
	if s.udpAddr != "" {
		o.UDP = deviceHTTPAddr(s.udpAddr, i) // PORT+i, as -http
	}
	if s.mqttServer != "" {
		o.MQTTServer, o.MQTTUser, o.MQTTPass = s.mqttServer, s.mqttUser, s.mqttPass
	}
	return o
}

// printChannels tells where the devices serve UDP and which broker they use.
func printChannels(out *printer, s *settings, devices []*device.Device) {
	if s.udpAddr != "" {
		first, last := devices[0], devices[len(devices)-1]
		switch {
		case len(devices) == 1:
			out.printf("simulator: UDP RPC on %s; try", first.UDPListen())
			host, port, _ := net.SplitHostPort(first.UDPListen())
			if everyInterface(host) { // as inbound.URL
				host = "127.0.0.1"
			}
			out.printf(`  echo '{"id":0,"method":"Shelly.GetDeviceInfo"}' | nc -u -w1 %s %s`, host, port)
		case httpPort(s.udpAddr) == 0:
			for _, d := range devices {
				out.printf("simulator: UDP RPC of %s on %s", d.ID(), d.UDPListen())
			}
		default:
			out.printf("simulator: UDP RPC of %s on %s … %s on %s, device i on port %d+i",
				first.ID(), first.UDPListen(), last.ID(), last.UDPListen(), httpPort(s.udpAddr))
		}
	}
	if s.mqttServer != "" {
		out.printf("simulator: MQTT to %s (plain TCP), one client per device; requests on <prefix>/rpc, e.g. %s/rpc",
			s.mqttServer, devices[0].MQTTTopicPrefix())
	}
}

// mdnsHooks connect a device's OnDown and OnUp to the process's mDNS
// responder: goodbye when it goes down, announce when it is up.
type mdnsHooks struct {
	mu  sync.Mutex
	r   *mdns.Responder // nil until started, and after stop
	svc func() (mdns.Service, error)
	id  string
	log *slog.Logger
}

func (h *mdnsHooks) down() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil {
		if err := h.r.Remove(h.id); err != nil && !errors.Is(err, mdns.ErrClosed) {
			h.log.Error("simulator: mDNS goodbye failed", "device", h.id, "err", err)
		}
	}
}

func (h *mdnsHooks) up() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r == nil {
		return
	}
	svc, err := h.svc() // after a firmware update, a new ver
	if err == nil {
		err = h.r.Add(svc)
	}
	if err != nil && !errors.Is(err, mdns.ErrClosed) {
		h.log.Error("simulator: mDNS announcement failed", "device", h.id, "err", err)
	}
}

// startMDNS starts the responder on s.mdnsIface for every device, each
// pointing at its -http server, and announces the devices that are on (a
// sleeping one is announced when it wakes).
func startMDNS(s *settings, devices []*device.Device, servers []*inbound, hooks []*mdnsHooks, logger *slog.Logger) (*mdns.Responder, error) {
	r, err := mdns.Listen(s.mdnsIface, mdns.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("-mdns %s: %w", s.mdnsIface, err)
	}
	var addrs []netip.Addr
	if host, _, err := net.SplitHostPort(s.httpAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() && !a.IsUnspecified() {
			addrs = []netip.Addr{a}
		}
	}
	var on []mdns.Service
	for i, d := range devices {
		_, port, _ := net.SplitHostPort(servers[i].Addr())
		p, _ := strconv.Atoi(port)
		h := hooks[i]
		h.svc = func() (mdns.Service, error) { return serviceOf(d, p, addrs) }
		h.mu.Lock()
		h.r = r
		h.mu.Unlock()
		if d.Sleeping() {
			continue
		}
		svc, err := h.svc()
		if err != nil {
			_ = r.Close()
			return nil, err
		}
		on = append(on, svc)
	}
	if err := r.Add(on...); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("-mdns: %w", err)
	}
	return r, nil
}

// stopMDNS says goodbye for every device and closes the responder.
func stopMDNS(r *mdns.Responder, hooks []*mdnsHooks) error {
	for _, h := range hooks {
		h.mu.Lock()
		h.r = nil
		h.mu.Unlock()
	}
	return r.Close()
}

// serviceOf is what d announces: its id, its web server's port, gen, app
// and ver of Shelly.GetDeviceInfo.
func serviceOf(d *device.Device, port int, addrs []netip.Addr) (mdns.Service, error) {
	res, err := d.Dispatch(context.Background(), &shellyws.Request{Method: "Shelly.GetDeviceInfo"})
	if err != nil {
		return mdns.Service{}, err
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return mdns.Service{}, err
	}
	var info device.DeviceInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return mdns.Service{}, err
	}
	return mdns.Service{Instance: d.ID(), Port: port, Addrs: addrs, Gen: info.Gen, App: info.App, Ver: info.Ver}, nil
}
