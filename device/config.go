package device

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// errStore answers a change the device could not store: the detail is in
// the device's log, never on the wire (it may name a file).
var errStore = shellyws.Errorf(shellyws.CodeInternal, "Failed to save the configuration")

// restartTypes are the components whose config takes effect at the next
// boot (protocol section 15.1): their SetConfig reports
// restart_required and sets sys.restart_required until then.
var restartTypes = map[string]bool{"wifi": true, "mqtt": true, "cloud": true, "ble": true, "eth": true}

// readOnly are config keys SetConfig ignores, by "<type>.<path>" or
// "*.<path>" for every type: they describe the device, not a setting.
var readOnly = map[string]bool{
	"*.id": true, "sys.cfg_rev": true, "sys.device.mac": true, "sys.device.fw_id": true,
	"sys.device.profile": true,
}

// enums are the string settings with a fixed set of values, by
// "<type>.<path>"; a value outside the set is -103.
var enums = map[string][]string{
	"switch.in_mode":       {"momentary", "follow", "flip", "detached", "cycle", "activate"},
	"switch.initial_state": {"off", "on", "restore_last", "match_input"},
	"input.type":           {"switch", "button", "analog", "count"},
	"cover.in_mode":        {"single", "dual", "detached"},
	"cover.initial_state":  {"open", "closed", "stopped"},
	"light.initial_state":  {"off", "on", "restore_last"},
	"rgb.initial_state":    {"off", "on", "restore_last"},
	"rgbw.initial_state":   {"off", "on", "restore_last"},
	"cct.initial_state":    {"off", "on", "restore_last"},
	"em.ct_type":           {"120A", "400A", "50A", "200A"},
	"em1.ct_type":          {"120A", "400A", "50A", "200A"},
	"wifi.sta.ipv4mode":    {"dhcp", "static"},
	"wifi.sta1.ipv4mode":   {"dhcp", "static"},
	"eth.ipv4mode":         {"dhcp", "static"},
}

// nullableStrings are keys whose value is a string or null, whatever the
// current value is: a null name must still refuse a number.
var nullableStrings = map[string]bool{
	"name": true, "server": true, "ssl_ca": true, "user": true, "pass": true, "topic_prefix": true,
	"client_id": true, "ssid": true, "tz": true, "ip": true, "netmask": true, "gw": true,
	"nameserver": true, "addr": true, "dst_addr": true, "ia": true,
}

// nullableNumbers are keys whose value is a number or null.
var nullableNumbers = map[string]bool{"lat": true, "lon": true, "listen_port": true, "file_level": true}

// setConfigParams are <Type>.SetConfig's params; Config is kept as raw
// JSON so that number literals keep their form.
type setConfigParams struct {
	ID     *int            `json:"id"`
	Config json.RawMessage `json:"config"`
}

// setConfig serves <Type>.SetConfig for every component of the model
// (protocol section 15.1): a partial, deep merge into the stored config,
// checked key by key against the types the config has; the merged config
// is stored before the answer, sys.cfg_rev goes up by one, and the server
// hears of it with a NotifyStatus of sys and a config_changed event.
func setConfig(d *Device, _ context.Context, req *shellyws.Request, typ string, instanced bool) (any, error) {
	var p setConfigParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	key := typ
	if instanced {
		if p.ID == nil {
			return nil, missingArg("id")
		}
		key = fmt.Sprintf("%s:%d", typ, *p.ID)
		if !d.p.Config.Has(key) {
			return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", *p.ID)
		}
	}
	if len(p.Config) == 0 || string(p.Config) == "null" {
		return nil, missingArg("config")
	}
	v, err := jsonv.Parse(p.Config)
	in, ok := v.(*jsonv.Object)
	if err != nil || !ok {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'config': must be an object")
	}
	restart, err := d.SetConfig(key, in)
	if err != nil {
		return nil, err
	}
	return restartResult{restart}, nil
}

// restartResult is what every SetConfig answers.
type restartResult struct {
	RestartRequired bool `json:"restart_required"`
}

// SetConfig merges the config fields in into the config of component key,
// as <Type>.SetConfig does for a server, and reports whether the change
// takes effect only after a reboot. in is a JSON object (a map, a struct,
// or raw JSON).
func (d *Device) SetConfig(key string, in any) (restartRequired bool, err error) {
	obj, err := toObject(in)
	if err != nil {
		return false, err
	}
	return d.setConfig(key, obj)
}

func toObject(in any) (*jsonv.Object, error) {
	if o, ok := in.(*jsonv.Object); ok {
		return o, nil
	}
	raw, ok := in.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(in); err != nil {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'config': %v", err)
		}
	}
	v, err := jsonv.Parse(raw)
	o, isObj := v.(*jsonv.Object)
	if err != nil || !isObj {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'config': must be an object")
	}
	return o, nil
}

// configLocked is the config object of key: stored, or the dump's.
func (d *Device) configLocked(key string) *jsonv.Object {
	if o := d.cfgOver[key]; o != nil {
		return o
	}
	return d.p.Config.Object(key)
}

func (d *Device) setConfig(key string, in *jsonv.Object) (bool, error) {
	typ, _, _ := strings.Cut(key, ":")
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	cur := d.configLocked(key)
	if cur == nil {
		d.mu.Unlock()
		return false, shellyws.Errorf(shellyws.CodeNotFound, "No config for %s", key)
	}
	merged, err := mergeConfig(cur, in, typ, "")
	if err == nil {
		merged, err = d.channelConfig(typ, in, merged)
	}
	if err != nil {
		d.mu.Unlock()
		return false, err
	}
	cfg, err := d.render(merged, nil)
	if err != nil {
		d.mu.Unlock()
		return false, err
	}
	rev, err := d.storeConfigLocked(func(doc *stateDoc) {
		if doc.Config == nil {
			doc.Config = map[string]json.RawMessage{}
		}
		doc.Config[key] = cfg
	})
	if err != nil {
		d.mu.Unlock()
		return false, err
	}
	if d.cfgOver == nil {
		d.cfgOver = map[string]*jsonv.Object{}
	}
	d.cfgOver[key] = merged
	restart := restartTypes[typ] || channelRestart(typ, in)
	sys := map[string]any{"cfg_rev": rev}
	if restart && !d.restartRequired {
		d.restartRequired = true
		sys["restart_required"] = true
	}
	if pt, ok := d.partOf(key).(configurable); ok {
		pt.configLocked(d, merged)
	}
	if key == "sys" {
		d.armSchedulesLocked() // sys.location drives them
	}
	d.mu.Unlock()
	d.notify(map[string]any{"sys": sys})
	d.configChanged(key, restart, rev)
	return restart, nil
}

// storeConfigLocked stores the device's state with sys.cfg_rev up by one
// and what put adds to it, then takes that cfg_rev, which it returns; a
// refused save changes nothing.
func (d *Device) storeConfigLocked(put func(doc *stateDoc)) (int, error) {
	doc, err := d.stateLocked()
	if err != nil {
		return 0, err
	}
	rev := d.cfgRev + 1
	doc.CfgRev = rev
	put(&doc)
	if err := d.saveLocked(doc); err != nil {
		return 0, err
	}
	d.cfgRev = rev
	return rev, nil
}

// configurable is a part that reads its config: it is told of every
// change.
type configurable interface {
	configLocked(d *Device, cfg *jsonv.Object)
}

// configChanged sends the config_changed event of key; the caller holds
// d.notifyMu.
func (d *Device) configChanged(key string, restart bool, rev int) {
	ev := shellyws.Event{
		Component: key,
		Event:     "config_changed",
		Fields:    map[string]any{"restart_required": restart, "cfg_rev": rev},
	}
	if _, n, keyed := strings.Cut(key, ":"); keyed {
		var id int
		if _, err := fmt.Sscan(n, &id); err == nil {
			ev.ID = &id
		}
	}
	if err := d.comp.NotifyEvent(ev); err != nil {
		d.log.Error("device: NotifyEvent failed", "err", err)
	}
}

// mergeConfig returns cur with in merged into it, key by key: a nested
// object merges, any other value replaces, keys cur lacks and read-only
// keys are ignored (as the firmware does, for forward compatibility). A
// value of the wrong JSON type, or a string outside its enum, is -103
// naming the key; then nothing changes.
func mergeConfig(cur, in *jsonv.Object, typ, path string) (*jsonv.Object, error) {
	out := &jsonv.Object{Keys: cur.Keys, Vals: slices.Clone(cur.Vals)}
	for i, k := range in.Keys {
		name := k
		if path != "" {
			name = path + "." + k
		}
		if readOnly["*."+name] || readOnly[typ+"."+name] {
			continue
		}
		j := slices.Index(cur.Keys, k)
		if j < 0 {
			continue
		}
		nv := in.Vals[i]
		if cur.Vals[j] == nil {
			switch _, isStr := nv.(string); {
			case nullableStrings[k] && nv != nil && !isStr:
				return nil, badType(name, "a string or null")
			case nullableNumbers[k] && nv != nil:
				if _, isNum := nv.(json.Number); !isNum {
					return nil, badType(name, "a number or null")
				}
			}
		}
		switch old := cur.Vals[j].(type) {
		case *jsonv.Object:
			if sub, ok := nv.(*jsonv.Object); ok {
				merged, err := mergeConfig(old, sub, typ, name)
				if err != nil {
					return nil, err
				}
				out.Vals[j] = merged
				continue
			}
			if nv != nil {
				return nil, badType(name, "an object")
			}
		case bool:
			if _, ok := nv.(bool); !ok {
				return nil, badType(name, "a boolean")
			}
		case json.Number:
			if _, ok := nv.(json.Number); !ok {
				return nil, badType(name, "a number")
			}
		case string, jsonv.Templated:
			s, isStr := nv.(string)
			if !isStr && nv != nil {
				return nil, badType(name, "a string")
			}
			if set, ok := enums[typ+"."+name]; ok && (!isStr || !slices.Contains(set, s)) {
				return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
					"Invalid argument 'config.%s': must be one of %s", name, strings.Join(set, ", "))
			}
		case []jsonv.Value:
			if _, ok := nv.([]jsonv.Value); !ok {
				return nil, badType(name, "an array")
			}
		}
		out.Vals[j] = nv
	}
	return out, nil
}

func badType(name, want string) error {
	return shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'config.%s': must be %s", name, want)
}
