package device

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/shellyws/shellyws"
)

// ComponentsPageSize is how many components one Shelly.GetComponents page
// holds; a client reads further pages with "offset", as it must with a real
// device.
const ComponentsPageSize = 5

// dispatch serves a request through the mux, with a debug line and the
// OnRequest hook per request. The component calls it for the outbound
// connection and a shellyws.Handler for the inbound channels alike.
func (d *Device) dispatch(ctx context.Context, req *shellyws.Request) (any, error) {
	res, err := d.mux.Dispatch(ctx, req)
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("simulator: request", "method", req.Method, "src", req.Src, "err", err)
	}
	if d.onRequest != nil {
		d.onRequest(req, err)
	}
	return res, err
}

// register adds every method of the device to its mux.
func (d *Device) register() {
	m := d.mux
	d.comp.Register(m) // Ws.GetConfig, Ws.SetConfig, Ws.GetStatus

	m.HandleFunc("Shelly.GetDeviceInfo", func(context.Context, *shellyws.Request) (any, error) {
		return d.deviceInfo(), nil
	})
	m.HandleFunc("Shelly.GetStatus", func(ctx context.Context, _ *shellyws.Request) (any, error) {
		return d.status(ctx), nil
	})
	m.HandleFunc("Shelly.GetConfig", func(context.Context, *shellyws.Request) (any, error) {
		return d.config(), nil
	})
	m.HandleFunc("Shelly.GetComponents", d.getComponents)
	m.HandleFunc("Shelly.Reboot", d.rebootRPC)

	// Singletons take no id, as on the firmware.
	for ns, key := range map[string]string{"Sys": "sys", "WiFi": "wifi", "Cloud": "cloud", "MQTT": "mqtt", "BLE": "ble"} {
		m.HandleFunc(ns+".GetStatus", func(ctx context.Context, _ *shellyws.Request) (any, error) {
			v, _ := d.statusOf(ctx, key)
			return v, nil
		})
		m.HandleFunc(ns+".GetConfig", func(context.Context, *shellyws.Request) (any, error) {
			v, _ := d.configOf(key)
			return v, nil
		})
	}
	// Switch and Input have instances and need "id".
	for ns, key := range map[string]string{"Switch": "switch:0", "Input": "input:0"} {
		m.HandleFunc(ns+".GetStatus", func(ctx context.Context, req *shellyws.Request) (any, error) {
			if _, err := decodeID(req); err != nil {
				return nil, err
			}
			v, _ := d.statusOf(ctx, key)
			return v, nil
		})
		m.HandleFunc(ns+".GetConfig", func(_ context.Context, req *shellyws.Request) (any, error) {
			if _, err := decodeID(req); err != nil {
				return nil, err
			}
			v, _ := d.configOf(key)
			return v, nil
		})
	}
	m.HandleFunc("Switch.Set", d.switchSet)
	m.HandleFunc("Switch.Toggle", d.switchToggle)
}

// decodeID checks the "id" of a Switch or Input request: it must be present
// and name the device's only instance, 0.
func decodeID(req *shellyws.Request) (int, error) {
	var p struct {
		ID *int `json:"id"`
	}
	if err := req.Decode(&p); err != nil {
		return 0, err
	}
	if p.ID == nil {
		return 0, shellyws.Errorf(shellyws.CodeInvalidArgument, "Missing required argument 'id'!")
	}
	if *p.ID != 0 {
		return 0, shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", *p.ID)
	}
	return 0, nil
}

// wasOnResult is the result of Switch.Set and Switch.Toggle.
type wasOnResult struct {
	WasOn bool `json:"was_on"`
}

// sourceOf is the switch source of a change req asks for: the channel it
// came on, as the firmware reports it.
func sourceOf(req *shellyws.Request) string {
	if req.Channel == shellyws.ChannelHTTP {
		return SourceHTTP
	}
	return SourceWS
}

func (d *Device) switchSet(_ context.Context, req *shellyws.Request) (any, error) {
	if _, err := decodeID(req); err != nil {
		return nil, err
	}
	var p struct {
		On          *bool    `json:"on"`
		ToggleAfter *float64 `json:"toggle_after"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.On == nil {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Missing required argument 'on'!")
	}
	var after time.Duration
	if p.ToggleAfter != nil {
		// The firmware takes seconds with a fraction; a day bounds it
		// sanely without restricting any real use.
		if *p.ToggleAfter <= 0 || *p.ToggleAfter > 86400 {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
				"Invalid argument 'toggle_after': must be seconds in (0, 86400]")
		}
		after = time.Duration(*p.ToggleAfter * float64(time.Second))
	}
	on := *p.On
	was, err := d.setSwitch(func(bool) bool { return on }, sourceOf(req), after)
	if err != nil {
		return nil, err
	}
	return wasOnResult{was}, nil
}

func (d *Device) switchToggle(_ context.Context, req *shellyws.Request) (any, error) {
	if _, err := decodeID(req); err != nil {
		return nil, err
	}
	was, err := d.setSwitch(func(was bool) bool { return !was }, sourceOf(req), 0)
	if err != nil {
		return nil, err
	}
	return wasOnResult{was}, nil
}

// rebootRPC answers Shelly.Reboot with null at once and reboots after
// delay_ms.
func (d *Device) rebootRPC(_ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		DelayMS *float64 `json:"delay_ms"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	delay := d.rebootDelay
	if p.DelayMS != nil {
		if *p.DelayMS < 0 || *p.DelayMS > 24*3600*1000 {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
				"Invalid argument 'delay_ms': must be milliseconds in [0, 86400000]")
		}
		delay = time.Duration(*p.DelayMS * float64(time.Millisecond))
	}
	if err := d.scheduleReboot(delay); err != nil {
		return nil, err
	}
	return nil, nil
}

// componentEntry is one element of Shelly.GetComponents' "components".
type componentEntry struct {
	Key    string `json:"key"`
	Status any    `json:"status,omitempty"`
	Config any    `json:"config,omitempty"`
}

// componentsResult is the result of Shelly.GetComponents.
type componentsResult struct {
	Components []componentEntry `json:"components"`
	CfgRev     int              `json:"cfg_rev"`
	Offset     int              `json:"offset"`
	Total      int              `json:"total"`
}

// getComponents serves Shelly.GetComponents: the static components, paged,
// each with its status and config (or what "include" asks for), filtered by
// "keys". The simulator has no dynamic components, so dynamic_only yields an
// empty page, which is what Home Assistant expects from a Plus 1PM.
func (d *Device) getComponents(ctx context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		Offset      int      `json:"offset"`
		DynamicOnly bool     `json:"dynamic_only"`
		Include     []string `json:"include"`
		Keys        []string `json:"keys"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Offset < 0 {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'offset': must not be negative")
	}
	withStatus, withConfig := true, true
	if p.Include != nil {
		withStatus, withConfig = slices.Contains(p.Include, "status"), slices.Contains(p.Include, "config")
	}
	var keys []string
	if !p.DynamicOnly {
		for _, k := range componentKeys {
			if p.Keys == nil || slices.Contains(p.Keys, k) {
				keys = append(keys, k)
			}
		}
	}
	d.mu.Lock()
	res := componentsResult{Components: []componentEntry{}, CfgRev: d.cfgRev, Offset: p.Offset, Total: len(keys)}
	d.mu.Unlock()
	if p.Offset < len(keys) {
		for _, k := range keys[p.Offset:min(len(keys), p.Offset+ComponentsPageSize)] {
			e := componentEntry{Key: k}
			if withStatus {
				e.Status, _ = d.statusOf(ctx, k)
			}
			if withConfig {
				e.Config, _ = d.configOf(k)
			}
			res.Components = append(res.Components, e)
		}
	}
	return res, nil
}
