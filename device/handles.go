package device

import (
	"strconv"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Switch returns switch:id, nil when the device has none.
func (d *Device) Switch(id int) *Switch {
	s, _ := d.partOf("switch:" + strconv.Itoa(id)).(*Switch)
	return s
}

// Input returns input:id, nil when the device has none.
func (d *Device) Input(id int) *Input {
	in, _ := d.partOf("input:" + strconv.Itoa(id)).(*Input)
	return in
}

// Cover returns cover:id, nil when the device has none.
func (d *Device) Cover(id int) *Cover {
	c, _ := d.partOf("cover:" + strconv.Itoa(id)).(*Cover)
	return c
}

// Light returns the dimmable output of this id: light:id, or rgb:id,
// rgbw:id or cct:id; nil when the device has none.
func (d *Device) Light(id int) *Light {
	for _, typ := range []string{"light", "rgb", "rgbw", "cct"} {
		if l, ok := d.partOf(typ + ":" + strconv.Itoa(id)).(*Light); ok {
			return l
		}
	}
	return nil
}

// Update sets fields of the status of component key, as the hardware
// measured them, and sends what changed as a NotifyStatus delta (with the
// component's id, as the firmware sends it). fields holds JSON values; a
// nested map sets fields of a nested object ({"battery": {"V": 5.5}}).
// Keys the status lacks are added. It is for sensors, meters and custom
// components; switches, covers and lights have their own methods.
func (d *Device) Update(key string, fields map[string]any) error {
	if len(fields) == 0 {
		return nil
	}
	st, ok := d.p.Status.Get(key)
	obj, isObj := st.(*jsonv.Object)
	if !ok || !isObj {
		return shellyws.Errorf(shellyws.CodeNotFound, "No status for %s", key)
	}
	switch d.partOf(key).(type) {
	case *Switch, *Cover, *Light, *Input:
		return shellyws.Errorf(shellyws.CodeInvalidArgument, "%s has its own methods: use Device.Switch, Cover, Light or Input", key)
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if d.statusOver == nil {
		d.statusOver = map[string]jsonv.Patch{}
	}
	d.statusOver[key] = mergePatch(d.statusOver[key], fields)
	delta := map[string]any{}
	if id, ok := obj.Get("id"); ok {
		delta["id"] = id
	}
	for k, v := range fields {
		cur, _ := obj.Get(k)
		delta[k] = jsonv.Delta(v, cur)
	}
	d.mu.Unlock()
	d.notify(map[string]any{key: delta})
	if ev, ok := readingEvent(key, fields); ok {
		d.emit(ev) // temperature.change, humidity.change
	}
	return nil
}

// mergePatch sets fields in p, nested maps merging into nested patches.
func mergePatch(p jsonv.Patch, fields map[string]any) jsonv.Patch {
	for k, v := range fields {
		if m, ok := v.(map[string]any); ok {
			sub, _ := p.Get(k)
			subPatch, _ := sub.(jsonv.Patch)
			v = mergePatch(subPatch, m)
		}
		p = setField(p, k, v)
	}
	return p
}

// SetTemperature sets temperature:id's reading in °C (tF follows).
func (d *Device) SetTemperature(id int, tC float64) error {
	return d.Update("temperature:"+strconv.Itoa(id), map[string]any{"tC": round(tC, 1), "tF": round(tC*9/5+32, 1)})
}

// SetHumidity sets humidity:id's reading in % relative humidity.
func (d *Device) SetHumidity(id int, rh float64) error {
	return d.Update("humidity:"+strconv.Itoa(id), map[string]any{"rh": round(rh, 1)})
}

// SetBattery sets devicepower:id's battery: its voltage and charge in %.
func (d *Device) SetBattery(id int, volts float64, percent int) error {
	return d.Update("devicepower:"+strconv.Itoa(id), map[string]any{"battery": map[string]any{"V": round(volts, 2), "percent": percent}})
}

// statusOverLocked is what Update set for key, ahead of the part's own
// patch so that it wins.
func (d *Device) statusOverLocked(key string, p jsonv.Patch, _ time.Time) jsonv.Patch {
	over := d.statusOver[key]
	if len(over) == 0 {
		return p
	}
	return append(over[:len(over):len(over)], p...)
}
