package device

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// part is the per-device state of one component that behaves (switch,
// cover, light) or whose readings drift; every other component is served
// from the dump as captured. Methods ending in Locked run with d.mu held.
type part interface {
	key() string
	// patchLocked is the device's overrides of the dump's status.
	patchLocked(d *Device, now time.Time) jsonv.Patch
	// readingsLocked is the telemetry delta: the readings that drift.
	readingsLocked(d *Device, now time.Time) jsonv.Patch
	// stopLocked stops the part's timers.
	stopLocked(d *Device)
	// bootLocked resets the part's RAM state after a reboot.
	bootLocked(d *Device)
}

// newParts builds the device's stateful components from the dump.
func (m *model) newParts(d *Device) []part {
	var parts []part
	for i, key := range m.p.Status.Keys {
		st, ok := m.p.Status.Vals[i].(*jsonv.Object)
		if !ok {
			continue
		}
		cfg := m.p.Config.Object(key)
		id, _ := keyInstance(key)
		switch keyType(key) {
		case "switch":
			parts = append(parts, newSwitch(d, key, id, st, cfg))
		case "cover":
			parts = append(parts, newCover(key, id, st, cfg))
		case "light", "rgb", "rgbw", "cct":
			parts = append(parts, newLight(d, key, id, st))
		case "input":
			parts = append(parts, newInput(d, key, id, st))
		case "temperature", "humidity", "devicepower", "illuminance", "em", "em1", "pm1", "voltmeter", "emdata", "em1data":
			parts = append(parts, &readings{k: key, st: st})
		}
	}
	return parts
}

func (d *Device) partOf(key string) part {
	for _, pt := range d.parts {
		if pt.key() == key {
			return pt
		}
	}
	return nil
}

// render encodes a dump value for this device.
func (d *Device) render(v jsonv.Value, patch jsonv.Patch) (json.RawMessage, error) {
	return jsonv.AppendJSON(nil, v, d.p.DumpMAC, d.mac, patch)
}

// sysPatchLocked is what the device changes in the dump's sys status (and
// in the Wall Display's device info, which has the same runtime fields).
func (d *Device) sysPatchLocked(obj *jsonv.Object, now time.Time) jsonv.Patch {
	var p jsonv.Patch
	set := func(k string, v any) {
		if obj.Has(k) {
			p = append(p, jsonv.Field{Key: k, Val: v})
		}
	}
	set("restart_required", d.restartRequired)
	if d.sleeping() {
		// Every wake is a boot: uptime since the wake, no clock until
		// SNTP set it.
		set("wakeup_period", max(int64(d.period.Round(time.Second)/time.Second), 1))
		set("wakeup_reason", jsonv.Patch{{Key: "boot", Val: d.wakeBoot}, {Key: "cause", Val: d.wakeCause}})
		set("uptime", int64(d.comp.SinceBoot()/time.Second))
		if !d.comp.ClockSet() {
			set("time", nil)
			set("unixtime", nil)
			set("last_sync_ts", nil)
		} else {
			set("time", now.Format("15:04"))
			set("unixtime", now.Unix())
		}
	} else {
		if obj.Has("wakeup_period") {
			set("wakeup_period", 0)
		}
		if s, ok := obj.String("time"); ok && s != "" {
			set("time", now.UTC().Format("15:04"))
		}
		if _, ok := obj.Number("unixtime"); ok {
			set("unixtime", now.Unix())
		}
		set("uptime", int64(now.Sub(d.bootedAt)/time.Second))
	}
	set("cfg_rev", d.cfgRev)
	set("reset_reason", d.resetReason)
	for _, s := range services {
		s.sysLocked(d, set)
	}
	return p
}

// componentStatus renders the status of key.
func (d *Device) componentStatus(key string) (json.RawMessage, error) {
	if key == shellyws.ComponentKey {
		return json.Marshal(d.comp.GetStatus())
	}
	if d.scriptComponent(key) {
		return d.scriptStatus(key)
	}
	v, ok := d.p.Status.Get(key)
	if !ok {
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "No status for %s", key)
	}
	d.mu.Lock()
	patch := d.statusPatchLocked(key, v, d.now())
	d.mu.Unlock()
	return d.render(v, patch)
}

func (d *Device) statusPatchLocked(key string, v jsonv.Value, now time.Time) jsonv.Patch {
	if key == "sys" {
		obj, _ := v.(*jsonv.Object)
		return d.sysPatchLocked(obj, now)
	}
	if key == "mqtt" {
		return d.statusOverLocked(key, d.mqttStatusPatchLocked(), now)
	}
	var p jsonv.Patch
	if pt := d.partOf(key); pt != nil {
		p = pt.patchLocked(d, now)
	}
	return d.statusOverLocked(key, p, now)
}

// componentConfig renders the config of key.
func (d *Device) componentConfig(key string) (json.RawMessage, error) {
	if key == shellyws.ComponentKey {
		return json.Marshal(d.comp.GetConfig())
	}
	if d.scriptComponent(key) {
		return d.scriptConfig(key)
	}
	d.mu.Lock()
	var v jsonv.Value
	ok := true
	if over := d.cfgOver[key]; over != nil {
		v = over
	} else if v, ok = d.p.Config.Get(key); !ok {
		d.mu.Unlock()
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "No config for %s", key)
	}
	v = withoutWriteOnly(key, v)
	var patch jsonv.Patch
	if obj, ok := v.(*jsonv.Object); ok && key == "sys" {
		if obj.Has("cfg_rev") {
			patch = jsonv.Patch{{Key: "cfg_rev", Val: d.cfgRev}}
		}
		if fw := d.sysFwIDLocked(); fw != "" && obj.Object("device").Has("fw_id") {
			patch = append(patch, jsonv.Field{Key: "device", Val: jsonv.Patch{{Key: "fw_id", Val: fw}}})
		}
	}
	d.mu.Unlock()
	return d.render(v, patch)
}

// allKeys are the device's component keys plus ws.
func (d *Device) allKeys() []string {
	keys := d.componentKeys(d.p.Keys)
	for _, k := range keys {
		if k == shellyws.ComponentKey {
			return keys
		}
	}
	return append(keys[:len(keys):len(keys)], shellyws.ComponentKey)
}

// object renders the keys of the dump object top, each with its value from
// get, and ws at the end where the dump lacks it.
func (d *Device) object(top *jsonv.Object, get func(string) (json.RawMessage, error)) (json.RawMessage, error) {
	keys := d.componentKeys(top.Keys)
	if !top.Has(shellyws.ComponentKey) {
		keys = append(keys[:len(keys):len(keys)], shellyws.ComponentKey)
	}
	buf := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		kb, _ := json.Marshal(k)
		buf = append(append(buf, kb...), ':')
		v, err := get(k)
		if err != nil {
			return nil, err
		}
		buf = append(buf, v...)
	}
	return append(buf, '}'), nil
}

// statusJSON is the whole Shelly.GetStatus answer.
func (d *Device) statusJSON() (json.RawMessage, error) {
	return d.object(d.p.Status, d.componentStatus)
}

// configJSON is the whole Shelly.GetConfig answer.
func (d *Device) configJSON() (json.RawMessage, error) {
	return d.object(d.p.Config, d.componentConfig)
}

// fullStatus is the status NotifyFullStatus carries (the component adds ws).
func (d *Device) fullStatus(context.Context) (map[string]any, error) {
	keys := d.componentKeys(d.p.Status.Keys)
	m := make(map[string]any, len(keys))
	for _, k := range keys {
		v, err := d.componentStatus(k)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// Status returns the whole device status, the object Shelly.GetStatus
// answers and NotifyFullStatus carries, one raw JSON value per component.
func (d *Device) Status() map[string]any {
	m, _ := d.fullStatus(context.Background())
	ws, _ := d.componentStatus(shellyws.ComponentKey)
	m[shellyws.ComponentKey] = ws
	return m
}

// deviceInfo is the Shelly.GetDeviceInfo answer.
func (d *Device) deviceInfo() (json.RawMessage, error) {
	d.mu.Lock()
	patch := d.sysPatchLocked(d.p.Info, d.now())
	if sys := d.cfgOver["sys"]; sys != nil && d.p.Info.Has("name") {
		// sys.device.name is the device's name everywhere at once.
		name, _ := sys.Object("device").Get("name")
		if t, ok := name.(jsonv.Templated); ok {
			name = jsonv.Render(t, d.p.DumpMAC, d.mac)
		}
		patch = append(patch, jsonv.Field{Key: "name", Val: name})
	}
	d.mu.Unlock()
	// On once a password is set (Shelly.SetAuth, -password); a model whose
	// dump lacks the fields gets them only then.
	if auth := d.comp.AuthInfo(); auth.Enabled || d.p.Info.Has("auth_en") {
		patch = append(patch, jsonv.Field{Key: "auth_en", Val: auth.Enabled}, jsonv.Field{Key: "auth_domain", Val: auth.Domain})
	}
	return d.render(d.p.Info, patch)
}

// DeviceInfo is the part of Shelly.GetDeviceInfo every model has.
type DeviceInfo struct {
	ID    string `json:"id"`
	MAC   string `json:"mac"`
	Model string `json:"model"`
	Gen   int    `json:"gen"`
	App   string `json:"app"`
	Ver   string `json:"ver"`
	// AuthEn and AuthDomain report the device's authentication: on once
	// a password is set, with the device id as its realm.
	AuthEn     bool    `json:"auth_en"`
	AuthDomain *string `json:"auth_domain"`
}

// readings is a sensor or meter whose values the dump holds; with
// telemetry they drift around the dump's values.
type readings struct {
	k  string
	st *jsonv.Object
	// cleared is when EMData.DeleteAllData (EM1Data.) nullified the
	// counters of an emdata/em1data part; zero if it did not since boot.
	cleared time.Time
}

func (r *readings) key() string { return r.k }
func (r *readings) patchLocked(d *Device, now time.Time) jsonv.Patch {
	p := d.driftLocked(r.k, r.st)
	// A meter with its own energy counter (pm1) counts on at the dump's
	// power since boot.
	if ae := r.st.Object("aenergy"); ae != nil {
		base, ok1 := ae.Number("total")
		power, ok2 := r.st.Number("apower")
		if ok1 && ok2 && power > 0 {
			total := base + power*now.Sub(d.bootedAt).Hours()
			p = append(p, jsonv.Field{Key: "aenergy", Val: jsonv.Patch{{Key: "total", Val: round(total, 3)}}})
		}
	}
	if d.tick == 0 && r.cleared.IsZero() {
		return p // without telemetry, meters answer the dump's readings
	}
	hours := d.uptimeHoursLocked(now)
	if !r.cleared.IsZero() {
		hours = now.Sub(r.cleared).Hours()
		if d.tick == 0 {
			hours = 0 // nullified, and nothing counts without telemetry
		}
	}
	zero := !r.cleared.IsZero()
	switch typ, n, _ := strings.Cut(r.k, ":"); typ {
	case "em":
		p = phaseTotals(p, r.st)
	case "emdata":
		p = meterEnergy(p, r.st, d.p.Status.Object("em:"+n), hours, zero, []string{"a_", "b_", "c_"}, "total_act", "total_act_ret")
	case "em1data":
		p = meterEnergy(p, r.st, d.p.Status.Object("em1:"+n), hours, zero, []string{""}, "", "")
	}
	return p
}

// uptimeHoursLocked is how long the device has been up, in hours.
func (d *Device) uptimeHoursLocked(now time.Time) float64 { return now.Sub(d.bootedAt).Hours() }

// phaseTotals keeps a three-phase meter's readings consistent once they
// drift: no phase draws more active than apparent power, and the totals are
// the sums of the phases, as on a real meter.
func phaseTotals(p jsonv.Patch, st *jsonv.Object) jsonv.Patch {
	if len(p) == 0 {
		return p // the dump's own values, consistent as captured
	}
	reading := func(key string) (float64, bool) {
		if v, ok := p.Get(key); ok {
			if d, isDec := v.(jsonv.Decimal); isDec {
				return float64(d), true
			}
		}
		return st.Number(key)
	}
	var act, aprt, cur float64
	for _, ph := range []string{"a_", "b_", "c_"} {
		a, ok1 := reading(ph + "act_power")
		ap, ok2 := reading(ph + "aprt_power")
		if ok1 && ok2 && math.Abs(a) > ap {
			ap = math.Abs(a)
			p = setField(p, ph+"aprt_power", jsonv.Decimal(round(ap, 1)))
		}
		c, _ := reading(ph + "current")
		act, aprt, cur = act+a, aprt+ap, cur+c
	}
	for key, v := range map[string]float64{"total_act_power": act, "total_aprt_power": aprt, "total_current": cur} {
		if st.Has(key) {
			p = setField(p, key, jsonv.Decimal(round(v, 3)))
		}
	}
	return p
}

// meterEnergy counts an energy meter's counters on since boot at the
// power its meter (em or em1 status) shows: active energy while the power
// is positive, returned energy while it is negative; totals are the sums of
// the phases. Counters are Wh; zero counts from 0 instead of the dump's
// counters (after DeleteAllData).
func meterEnergy(p jsonv.Patch, data, meter *jsonv.Object, hours float64, zero bool, phases []string, total, totalRet string) jsonv.Patch {
	if meter == nil || (hours <= 0 && !zero) {
		return p
	}
	hours = max(hours, 0)
	var sum, sumRet float64
	for _, ph := range phases {
		power, ok := meter.Number(ph + "act_power")
		act, ok1 := data.Number(ph + "total_act_energy")
		ret, ok2 := data.Number(ph + "total_act_ret_energy")
		if !ok || !ok1 || !ok2 {
			continue
		}
		if zero {
			act, ret = 0, 0
		}
		if power > 0 {
			act += power * hours
		} else {
			ret += -power * hours
		}
		p = setField(p, ph+"total_act_energy", jsonv.Decimal(round(act, 2)))
		p = setField(p, ph+"total_act_ret_energy", jsonv.Decimal(round(ret, 2)))
		sum, sumRet = sum+act, sumRet+ret
	}
	if total != "" && data.Has(total) {
		p = setField(p, total, jsonv.Decimal(round(sum, 2)))
		p = setField(p, totalRet, jsonv.Decimal(round(sumRet, 2)))
	}
	return p
}
func (r *readings) readingsLocked(d *Device, now time.Time) jsonv.Patch {
	return withID(r.st, r.patchLocked(d, now))
}
func (r *readings) stopLocked(*Device) {}
func (r *readings) bootLocked(*Device) { r.cleared = time.Time{} }

// withID puts the dump's id first in a delta, as the firmware does.
func withID(st *jsonv.Object, p jsonv.Patch) jsonv.Patch {
	if len(p) == 0 {
		return nil
	}
	if id, ok := st.Get("id"); ok {
		return append(jsonv.Patch{{Key: "id", Val: id}}, p...)
	}
	return p
}

// drifts are the readings telemetry moves.
func drifts(name string) bool {
	switch name {
	case "tC", "rh", "lux", "voltage", "current", "apower", "act_power", "aprt_power", "V":
		return true
	}
	return strings.HasSuffix(name, "_voltage") || strings.HasSuffix(name, "_current") ||
		strings.HasSuffix(name, "_act_power") || strings.HasSuffix(name, "_aprt_power")
}

// driftLocked returns the readings of obj moved by up to ±1 % for the
// current telemetry period; nothing before the first period, so a device
// without telemetry answers the dump's values.
func (d *Device) driftLocked(key string, obj *jsonv.Object) jsonv.Patch {
	if d.tick == 0 || obj == nil {
		return nil
	}
	var p jsonv.Patch
	for i, k := range obj.Keys {
		switch v := obj.Vals[i].(type) {
		case json.Number:
			if !drifts(k) {
				continue
			}
			base, err := v.Float64()
			if err != nil || base == 0 {
				continue
			}
			// Readings the device computes print with a decimal point,
			// as the firmware prints them (protocol section 16.2).
			x := round(base*(1+d.noise(key, k)/100), decimals(v))
			p = append(p, jsonv.Field{Key: k, Val: jsonv.Decimal(x)})
			if k == "tC" && obj.Has("tF") {
				p = append(p, jsonv.Field{Key: "tF", Val: jsonv.Decimal(round(x*9/5+32, 1))})
			}
		case *jsonv.Object:
			if k == "aenergy" || k == "ret_aenergy" {
				continue
			}
			if sub := d.driftLocked(key+"."+k, v); sub != nil {
				p = append(p, jsonv.Field{Key: k, Val: sub})
			}
		}
	}
	return p
}

// noise is a value in [-1, 1) fixed per device, period and reading, so a
// reading answered twice in one period is the same.
func (d *Device) noise(key, field string) float64 {
	h := fnv.New64a()
	var b [12]byte
	for i := range 4 {
		b[i] = byte(d.seed >> (8 * i))
	}
	for i := range 8 {
		b[4+i] = byte(d.tick >> (8 * i))
	}
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte(field))
	return float64(h.Sum64()%2000)/1000 - 1
}

// decimals is how many decimals a dump number shows, 1 to 3.
func decimals(n json.Number) int {
	_, frac, ok := strings.Cut(string(n), ".")
	if !ok {
		return 1
	}
	return min(max(len(frac), 1), 3)
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

// telemetryTick is the telemetry timer firing: the readings move and are
// pushed as one NotifyStatus.
func (d *Device) telemetryTick(self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if d.telemetryTimer != self || !d.running {
		d.mu.Unlock()
		return
	}
	d.tick++
	now := d.now()
	delta := map[string]any{}
	for _, pt := range d.parts {
		if p := pt.readingsLocked(d, now); len(p) > 0 {
			delta[pt.key()] = p.Map(d.p.Status.Object(pt.key()))
		}
	}
	d.telemetryTimer = d.startTimerLocked(d.telemetry, d.telemetryTick)
	d.mu.Unlock()
	d.notify(delta)
}
