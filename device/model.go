package device

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// ComponentsPageSize is how many components one Shelly.GetComponents page
// holds; a client reads further pages with "offset", as it must with a real
// device.
const ComponentsPageSize = 5

// model is what every device of a profile shares: the method table and the
// method list, built once per profile.
type model struct {
	p       *Model
	mux     *shellyws.Mux // every method but Ws.* and Shelly.SetAuth; handlers find the device in ctx
	methods []string      // Shelly.ListMethods
	cfgRev  int           // sys.cfg_rev of the dump
	hasSys  bool          // the dump's status has sys
	resetIn bool          // the dump's sys status reports reset_reason
	scripts *scriptModel  // the Script service's (script.go); nil where the model has none
}

// modelOf returns p's method table, built on first use: a Model is
// immutable once a device uses it.
func modelOf(p *Model) *model {
	p.methods.Do(func() { p.table = buildModel(p) })
	return p.table
}

// devKey carries the device to the shared mux's handlers.
type devKey struct{}

func devOf(ctx context.Context) *Device { return ctx.Value(devKey{}).(*Device) }

// FromContext returns the device a request is for, from the context its
// handler got; nil outside a device's handler. CustomSpec methods use it.
func FromContext(ctx context.Context) *Device {
	d, _ := ctx.Value(devKey{}).(*Device)
	return d
}

// handler is a method of a device.
type handler func(d *Device, ctx context.Context, req *shellyws.Request) (any, error)

// namespaces are the firmware's RPC namespace spellings of component types.
var namespaces = map[string]string{
	"ble": "BLE", "bthome": "BTHome", "cloud": "Cloud", "mqtt": "MQTT", "wifi": "WiFi", "sys": "Sys",
	"eth": "Eth", "knx": "KNX", "matter": "Matter", "modbus": "Modbus", "em": "EM", "em1": "EM1",
	"emdata": "EMData", "em1data": "EM1Data", "pm1": "PM1", "rgb": "RGB", "rgbw": "RGBW", "cct": "CCT",
	"ui": "UI", "plugs_ui": "PLUGS_UI", "pluguk_ui": "PLUGUK_UI", "ht_ui": "HT_UI", "wd_ui": "WD_UI",
	"powerstrip_ui": "POWERSTRIP_UI", "devicepower": "DevicePower", "blugw": "BluGw", "blutrv": "BluTRV",
	"zigbee": "Zigbee", "script": "Script", "input": "Input", "switch": "Switch", "cover": "Cover",
	"light": "Light", "temperature": "Temperature", "humidity": "Humidity", "illuminance": "Illuminance",
	"voltmeter": "Voltmeter", "boolean": "Boolean", "number": "Number", "enum": "Enum", "object": "Object",
	"service": "Service", "presence": "Presence", "presencezone": "PresenceZone", "flood": "Flood",
	"smoke": "Smoke", "cb": "CB", "cury": "Cury", "dali": "DALI", "media": "Media", "thermostat": "Thermostat",
	"plusrgbwpm": "PlusRGBWPM",
}

// Namespace returns the RPC namespace of a component type, e.g. "Switch"
// for "switch"; a type the table does not know is capitalised.
func Namespace(typ string) string {
	if ns, ok := namespaces[typ]; ok {
		return ns
	}
	if typ == "" {
		return ""
	}
	return strings.ToUpper(typ[:1]) + typ[1:]
}

// actions are the methods beyond GetStatus/GetConfig that a component type
// behaves for.
var actions = map[string]map[string]handler{
	"switch": {"Set": switchSet, "Toggle": switchToggle},
	"cover":  {"Open": coverOpen, "Close": coverClose, "Stop": coverStop, "GoToPosition": coverGoTo},
	"light":  {"Set": lightSet, "Toggle": lightToggle},
	"rgb":    {"Set": lightSet, "Toggle": lightToggle},
	"rgbw":   {"Set": lightSet, "Toggle": lightToggle},
	"cct":    {"Set": lightSet, "Toggle": lightToggle},
	// emdata.go
	"emdata":  emdataActions(),
	"em1data": emdataActions(),
}

func buildModel(p *Model) *model {
	m := &model{p: p, mux: shellyws.NewMux(), scripts: newScriptModel(p)}
	if sys := p.Status.Object("sys"); sys != nil {
		m.hasSys = true
		m.resetIn = sys.Has("reset_reason")
	}
	if rev, ok := p.Config.Object("sys").Number("cfg_rev"); ok {
		m.cfgRev = int(rev)
	} else if rev, ok := p.Status.Object("sys").Number("cfg_rev"); ok {
		m.cfgRev = int(rev)
	}
	handle := func(method string, h handler) {
		m.mux.HandleFunc(method, func(ctx context.Context, req *shellyws.Request) (any, error) {
			return h(devOf(ctx), ctx, req)
		})
	}
	handle("Shelly.GetDeviceInfo", func(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
		return d.deviceInfo()
	})
	handle("Shelly.GetStatus", func(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
		return d.statusJSON()
	})
	handle("Shelly.GetConfig", func(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
		return d.configJSON()
	})
	handle("Shelly.GetComponents", getComponents)
	handle("Shelly.Reboot", rebootRPC)

	seen := map[string]bool{}
	for _, key := range p.Keys {
		typ := keyType(key)
		if key == "ws" || seen[typ] || (typ == "script" && m.scripts != nil) {
			continue // Script.* are the Script service's (script.go)
		}
		seen[typ] = true
		ns := Namespace(typ)
		_, instanced := keyInstance(key)
		if hasType(p.Status, typ) {
			handle(ns+".GetStatus", func(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
				k, err := d.keyOf(typ, instanced, req)
				if err != nil {
					return nil, err
				}
				return d.componentStatus(k)
			})
		}
		if hasType(p.Config, typ) {
			handle(ns+".GetConfig", func(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
				k, err := d.keyOf(typ, instanced, req)
				if err != nil {
					return nil, err
				}
				return d.componentConfig(k)
			})
			handle(ns+".SetConfig", func(d *Device, ctx context.Context, req *shellyws.Request) (any, error) {
				return setConfig(d, ctx, req, typ, instanced)
			})
		}
		names := make([]string, 0, len(actions[typ]))
		for name := range actions[typ] {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			handle(ns+"."+name, actions[typ][name])
		}
	}
	for _, s := range services {
		s.register(p, handle)
	}
	for _, c := range p.custom {
		m.mux.Handle(c.name, c.h)
	}
	m.methods = p.Methods
	if m.methods == nil {
		// Ws.* and Shelly.SetAuth come from each device's component
		// (Component.Register).
		m.methods = append(m.mux.Methods(), "Ws.GetConfig", "Ws.GetStatus", "Ws.SetConfig", shellyws.SetAuthMethod)
		slices.Sort(m.methods)
		m.methods = slices.Compact(m.methods)
	}
	list := json.RawMessage(mustJSON(struct {
		Methods []string `json:"methods"`
	}{m.methods}))
	m.mux.HandleFunc(shellyws.ListMethodsMethod, func(context.Context, *shellyws.Request) (any, error) {
		return list, nil
	})
	return m
}

func hasType(o *jsonv.Object, typ string) bool {
	for _, k := range o.Keys {
		if keyType(k) == typ {
			return true
		}
	}
	return false
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// dispatch serves a request: Ws.* and Shelly.SetAuth from the component's own methods,
// everything else from the model, with a debug line and the OnRequest hook
// per request. The component calls it for the outbound connection and a
// shellyws.Handler for the inbound channels alike.
func (d *Device) dispatch(ctx context.Context, req *shellyws.Request) (res any, err error) {
	if IsSim(req.Method) && (simAllowed(ctx) || req.Channel == shellyws.ChannelInboundWebsocket) {
		res, err = d.HandleSim(ctx, req)
	} else if (len(req.Method) > 3 && strings.EqualFold(req.Method[:3], "ws.")) || strings.EqualFold(req.Method, shellyws.SetAuthMethod) {
		res, err = d.wsMethods.Dispatch(ctx, req)
		if e := shellyws.AsError(err); e != nil && e.Code == shellyws.CodeNoHandler {
			res, err = d.m.mux.Dispatch(context.WithValue(ctx, devKey{}, d), req)
		}
	} else {
		res, err = d.m.mux.Dispatch(context.WithValue(ctx, devKey{}, d), req)
	}
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("simulator: request", "method", req.Method, "src", req.Src, "err", err)
	}
	if d.onRequest != nil {
		d.onRequest(req, err)
	}
	return res, err
}

// keyOf returns the component key a request names: typ for a singleton,
// "typ:id" for an instanced type, which needs an "id" the device has.
func (d *Device) keyOf(typ string, instanced bool, req *shellyws.Request) (string, error) {
	if !instanced {
		return typ, nil
	}
	var p struct {
		ID *int `json:"id"`
	}
	if err := req.Decode(&p); err != nil {
		return "", err
	}
	if p.ID == nil {
		return "", missingArg("id")
	}
	key := typ + ":" + strconv.Itoa(*p.ID)
	if !slices.Contains(d.p.Keys, key) {
		return "", shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", *p.ID)
	}
	return key, nil
}

// rebootRPC answers Shelly.Reboot with null at once and reboots after
// delay_ms.
func rebootRPC(d *Device, ctx context.Context, req *shellyws.Request) (any, error) {
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
	if err := d.scheduleReboot(ctx, delay); err != nil {
		return nil, err
	}
	return nil, nil
}

// getComponents serves Shelly.GetComponents. With dynamic_only it answers
// the dump's captured answer (every captured one is a dynamic_only answer)
// with the device's cfg_rev, or an empty page when the dump has none. Without
// it, it lists every component of the dump, paged, each with its status
// and config (or what "include" asks for), filtered by "keys".
func getComponents(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
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
	d.mu.Lock()
	rev := d.cfgRev
	d.mu.Unlock()
	if p.DynamicOnly {
		if c := d.p.Components; c != nil {
			return d.render(c, jsonv.Patch{{Key: "cfg_rev", Val: rev}})
		}
		return componentsResult{Components: []componentEntry{}, CfgRev: rev, Offset: p.Offset}, nil
	}
	withStatus, withConfig := true, true
	if p.Include != nil {
		withStatus, withConfig = slices.Contains(p.Include, "status"), slices.Contains(p.Include, "config")
	}
	var keys []string
	for _, k := range d.allKeys() {
		if p.Keys == nil || slices.Contains(p.Keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	res := componentsResult{Components: []componentEntry{}, CfgRev: rev, Offset: p.Offset, Total: len(keys)}
	if p.Offset < len(keys) {
		for _, k := range keys[p.Offset:min(len(keys), p.Offset+ComponentsPageSize)] {
			e := componentEntry{Key: k}
			var err error
			if withStatus && (d.p.Status.Has(k) || k == "ws" || d.scriptComponent(k)) {
				if e.Status, err = d.componentStatus(k); err != nil {
					return nil, err
				}
			}
			if withConfig && (d.p.Config.Has(k) || k == "ws" || d.scriptComponent(k)) {
				if e.Config, err = d.componentConfig(k); err != nil {
					return nil, err
				}
			}
			res.Components = append(res.Components, e)
		}
	}
	return res, nil
}

// componentEntry is one element of Shelly.GetComponents' "components".
type componentEntry struct {
	Key    string          `json:"key"`
	Status json.RawMessage `json:"status,omitempty"`
	Config json.RawMessage `json:"config,omitempty"`
}

// componentsResult is the result of Shelly.GetComponents.
type componentsResult struct {
	Components []componentEntry `json:"components"`
	CfgRev     int              `json:"cfg_rev"`
	Offset     int              `json:"offset"`
	Total      int              `json:"total"`
}
