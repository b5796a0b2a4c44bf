package device

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

//go:generate go run ./internal/mktemplates

// templatesJSON holds the shapes NewModel builds from: real devices'
// config and status of each component type (see internal/mktemplates).
//
//go:embed templates.json
var templatesJSON []byte

// placeholderMAC is the MAC the templates are written with.
const placeholderMAC = "AABBCCDDEEFF"

var templates = sync.OnceValues(func() (*jsonv.Object, error) {
	v, err := jsonv.Parse(templatesJSON)
	if err != nil {
		return nil, err
	}
	top := v.(*jsonv.Object)
	jsonv.TemplateMAC(top, placeholderMAC)
	return top, nil
})

// Info is what Shelly.GetDeviceInfo says of a kind of device.
type Info struct {
	// Model is the hardware model, e.g. "SPSW-202XE16EU". Required.
	Model string
	// App is the firmware application, e.g. "Pro2PM". Required.
	App string
	// IDPrefix is the device id's part before "-<MAC>", e.g.
	// "shellypro2pm": servers take the MAC from what follows it. Required:
	// lower-case letters and digits.
	IDPrefix string
	// Gen is the API generation, 2, 3 or 4. Default: 2.
	Gen int
	// Ver and FwID are the firmware version and build, e.g. "1.4.4" and
	// "20241011-114455/1.4.4-g6d2a586". Default: "1.0.0" and a build of it.
	Ver, FwID string
	// Profile is the device profile of a multi-profile device ("switch",
	// "cover"); "" for none.
	Profile string
}

// A Spec adds one component to a model built by NewModel: SwitchSpec,
// InputSpec, CoverSpec, LightSpec, TemperatureSpec, HumiditySpec,
// DevicePowerSpec, EMSpec, EM1Spec or CustomSpec.
type Spec interface {
	// keys are the component keys the spec adds; add adds them.
	keys() []string
	add(b *modelBuilder) error
}

// SwitchSpec is a relay, switch:ID, with its firmware config
// (in_mode, initial_state, auto_on/auto_off …) and, with Metering, the
// power meter of a PM model (apower, voltage, current, aenergy).
type SwitchSpec struct {
	ID       int
	Name     string // "" is null, as on a new device
	Metering bool
}

// InputSpec is an input, input:ID: a switch input reports its state, a
// button input reports pushes as events (Device.Input).
type InputSpec struct {
	ID   int
	Name string
	// Button makes it a button input (config type "button") instead of a
	// switch input.
	Button bool
}

// CoverSpec is a roller shutter, cover:ID, moving over time with
// position control.
type CoverSpec struct {
	ID   int
	Name string
}

// LightSpec is a dimmable output: Kind "light" (default, brightness),
// "rgb", "rgbw" (colour) or "cct" (colour temperature).
type LightSpec struct {
	ID   int
	Name string
	Kind string
}

// TemperatureSpec is a temperature sensor, temperature:ID (tC, tF).
type TemperatureSpec struct {
	ID   int
	Name string
}

// HumiditySpec is a humidity sensor, humidity:ID (rh).
type HumiditySpec struct {
	ID   int
	Name string
}

// DevicePowerSpec is the battery of a battery device, devicepower:ID.
type DevicePowerSpec struct{ ID int }

// EMSpec is a three-phase energy meter: em:ID with its counters
// emdata:ID.
type EMSpec struct {
	ID   int
	Name string
}

// EM1Spec is a single-phase energy meter: em1:ID with its counters
// em1data:ID.
type EM1Spec struct {
	ID   int
	Name string
}

// CustomSpec adds a component the kit has no type for. Config and Status
// are its initial config and status, JSON objects (nil: {}); the device
// answers <Type>.GetConfig, <Type>.GetStatus and a generic <Type>.SetConfig
// for it like for any other component, and serves Methods, named
// "<Type>.<Name>" as the firmware names them (e.g. "Boiler.Heat").
// Handlers find their device with FromContext; a handler changes the
// status with Device.Update, which sends the NotifyStatus delta.
type CustomSpec struct {
	// Key is the component key, "<type>:<id>" or a singleton's "<type>":
	// lower-case, not a type the kit already has.
	Key            string
	Config, Status json.RawMessage
	Methods        map[string]shellyws.DispatcherFunc
}

func (s SwitchSpec) keys() []string      { return []string{"switch:" + strconv.Itoa(s.ID)} }
func (s InputSpec) keys() []string       { return []string{"input:" + strconv.Itoa(s.ID)} }
func (s CoverSpec) keys() []string       { return []string{"cover:" + strconv.Itoa(s.ID)} }
func (s TemperatureSpec) keys() []string { return []string{"temperature:" + strconv.Itoa(s.ID)} }
func (s HumiditySpec) keys() []string    { return []string{"humidity:" + strconv.Itoa(s.ID)} }
func (s DevicePowerSpec) keys() []string { return []string{"devicepower:" + strconv.Itoa(s.ID)} }
func (s EMSpec) keys() []string {
	return []string{"em:" + strconv.Itoa(s.ID), "emdata:" + strconv.Itoa(s.ID)}
}
func (s EM1Spec) keys() []string {
	return []string{"em1:" + strconv.Itoa(s.ID), "em1data:" + strconv.Itoa(s.ID)}
}
func (s LightSpec) keys() []string {
	kind := s.Kind
	if kind == "" {
		kind = "light"
	}
	return []string{kind + ":" + strconv.Itoa(s.ID)}
}
func (s CustomSpec) keys() []string { return []string{s.Key} }

func (s SwitchSpec) add(b *modelBuilder) error {
	tmpl := "switch/plain"
	if s.Metering {
		tmpl = "switch"
	}
	return b.component(s.keys()[0], tmpl, s.ID, s.Name, nil)
}

func (s InputSpec) add(b *modelBuilder) error {
	var cfg jsonv.Patch
	if s.Button {
		cfg = jsonv.Patch{{Key: "type", Val: "button"}}
	}
	if err := b.component(s.keys()[0], "input", s.ID, s.Name, cfg); err != nil {
		return err
	}
	if s.Button {
		// A button has no state: the firmware reports null.
		b.status.Vals[len(b.status.Vals)-1] = patched(b.status.Vals[len(b.status.Vals)-1], jsonv.Patch{{Key: "state", Val: nil}})
	}
	return nil
}

func (s CoverSpec) add(b *modelBuilder) error {
	return b.component(s.keys()[0], "cover", s.ID, s.Name, nil)
}

func (s LightSpec) add(b *modelBuilder) error {
	switch s.Kind {
	case "", "light", "rgb", "cct":
		tmpl := s.Kind
		if tmpl == "" {
			tmpl = "light"
		}
		return b.component(s.keys()[0], tmpl, s.ID, s.Name, nil)
	case "rgbw":
		if err := b.component(s.keys()[0], "rgb", s.ID, s.Name, nil); err != nil {
			return err
		}
		i := len(b.status.Vals) - 1
		b.status.Vals[i] = patched(b.status.Vals[i], jsonv.Patch{{Key: "white", Val: json.Number("0")}})
		return nil
	}
	return fmt.Errorf("LightSpec %d: kind %q is not light, rgb, rgbw or cct", s.ID, s.Kind)
}

func (s TemperatureSpec) add(b *modelBuilder) error {
	return b.component(s.keys()[0], "temperature", s.ID, s.Name, nil)
}

func (s HumiditySpec) add(b *modelBuilder) error {
	return b.component(s.keys()[0], "humidity", s.ID, s.Name, nil)
}

func (s DevicePowerSpec) add(b *modelBuilder) error {
	return b.component(s.keys()[0], "devicepower", s.ID, "", nil)
}

func (s EMSpec) add(b *modelBuilder) error {
	k := s.keys()
	if err := b.component(k[0], "em", s.ID, s.Name, nil); err != nil {
		return err
	}
	return b.component(k[1], "emdata", s.ID, "", nil)
}

func (s EM1Spec) add(b *modelBuilder) error {
	k := s.keys()
	if err := b.component(k[0], "em1", s.ID, s.Name, nil); err != nil {
		return err
	}
	return b.component(k[1], "em1data", s.ID, "", nil)
}

func (s CustomSpec) add(b *modelBuilder) error {
	typ, id, err := splitKey(s.Key)
	if err != nil {
		return fmt.Errorf("CustomSpec: %w", err)
	}
	if _, builtin := builtinTypes[typ]; builtin {
		return fmt.Errorf("CustomSpec %q: %s is a type of the kit; use its Spec", s.Key, typ)
	}
	var objs [2]*jsonv.Object
	for i, raw := range []json.RawMessage{s.Config, s.Status} {
		if len(raw) == 0 {
			objs[i] = &jsonv.Object{}
			continue
		}
		v, err := jsonv.Parse(raw)
		o, isObj := v.(*jsonv.Object)
		if err != nil || !isObj {
			return fmt.Errorf("CustomSpec %q: Config and Status must be JSON objects", s.Key)
		}
		objs[i] = o
	}
	if id >= 0 {
		for _, o := range objs {
			setKey(o, "id", json.Number(strconv.Itoa(id)), true)
		}
	}
	b.config.Keys, b.config.Vals = append(b.config.Keys, s.Key), append(b.config.Vals, objs[0])
	b.status.Keys, b.status.Vals = append(b.status.Keys, s.Key), append(b.status.Vals, objs[1])
	ns := Namespace(typ)
	for name, h := range s.Methods {
		if h == nil || name == "" || strings.Contains(name, ".") {
			return fmt.Errorf("CustomSpec %q: method %q: want a name without a dot and a handler", s.Key, name)
		}
		b.custom[strings.ToLower(ns+"."+name)] = customMethod{name: ns + "." + name, h: h}
	}
	return nil
}

// builtinTypes are the component types whose behaviour the kit provides.
var builtinTypes = map[string]struct{}{
	"sys": {}, "wifi": {}, "cloud": {}, "mqtt": {}, "ble": {}, "ws": {}, "switch": {}, "input": {},
	"cover": {}, "light": {}, "rgb": {}, "rgbw": {}, "cct": {}, "temperature": {}, "humidity": {},
	"devicepower": {}, "em": {}, "emdata": {}, "em1": {}, "em1data": {},
}

// customMethod is a method of a CustomSpec.
type customMethod struct {
	name string
	h    shellyws.DispatcherFunc
}

// modelBuilder collects a NewModel's components.
type modelBuilder struct {
	tmpl           *jsonv.Object
	config, status *jsonv.Object
	custom         map[string]customMethod
}

// component appends key with the config and status of template tmpl, its
// id set to id and its name to name (null when ""), and cfg applied.
func (b *modelBuilder) component(key, tmpl string, id int, name string, cfg jsonv.Patch) error {
	t := b.tmpl.Object("components").Object(tmpl)
	if t == nil {
		return fmt.Errorf("no template for %s", tmpl)
	}
	if slices.Contains(b.status.Keys, key) {
		return fmt.Errorf("component %s added twice", key)
	}
	idVal := json.Number(strconv.Itoa(id))
	var nameVal jsonv.Value
	if name != "" {
		nameVal = name
	}
	config := clone(t.Object("config"))
	status := clone(t.Object("status"))
	setKey(config, "id", idVal, false)
	setKey(config, "name", nameVal, false)
	for _, f := range cfg {
		setKey(config, f.Key, f.Val, false)
	}
	setKey(status, "id", idVal, false)
	if len(config.Keys) > 0 || tmpl == "devicepower" || strings.HasSuffix(tmpl, "data") {
		b.config.Keys, b.config.Vals = append(b.config.Keys, key), append(b.config.Vals, config)
	}
	b.status.Keys, b.status.Vals = append(b.status.Keys, key), append(b.status.Vals, status)
	return nil
}

// NewModel builds the model of a device of your own: the components every
// Gen2 device has (sys, wifi, cloud, mqtt, ble, ws) and those specs add,
// each shaped as on a real device (the shapes come from the captured
// devices of package profile). Methods, Shelly.ListMethods and
// Shelly.GetComponents follow from the components. Share the model
// between devices of the kind; New gives each its own id and state.
func NewModel(info Info, specs ...Spec) (*Model, error) {
	if info.Model == "" || info.App == "" {
		return nil, errors.New("device: NewModel: Info.Model and Info.App are required")
	}
	if err := checkPrefix(info.IDPrefix); err != nil {
		return nil, fmt.Errorf("device: NewModel: Info.IDPrefix: %w", err)
	}
	if info.Gen == 0 {
		info.Gen = 2
	}
	if info.Gen < 2 || info.Gen > 4 {
		return nil, fmt.Errorf("device: NewModel: Info.Gen %d: want 2, 3 or 4", info.Gen)
	}
	if info.Ver == "" {
		info.Ver = "1.0.0"
	}
	if info.FwID == "" {
		info.FwID = "20250101-000000/" + info.Ver + "-gshellyws"
	}
	tmpl, err := templates()
	if err != nil {
		return nil, err
	}
	id := jsonv.Templated(info.IDPrefix + "-" + strings.ToLower(placeholderMAC))
	b := &modelBuilder{tmpl: tmpl, config: &jsonv.Object{}, status: &jsonv.Object{}, custom: map[string]customMethod{}}
	for _, key := range []string{"ble", "cloud", "mqtt", "sys", "wifi"} {
		t := tmpl.Object("components").Object(key)
		b.config.Keys, b.config.Vals = append(b.config.Keys, key), append(b.config.Vals, clone(t.Object("config")))
		b.status.Keys, b.status.Vals = append(b.status.Keys, key), append(b.status.Vals, clone(t.Object("status")))
	}
	// A new device: no name, no history, nothing offered, its own ids.
	sysCfg := b.config.Object("sys")
	dev := sysCfg.Object("device")
	setKey(dev, "name", nil, false)
	setKey(dev, "fw_id", info.FwID, false)
	if info.Profile != "" {
		setKey(dev, "profile", info.Profile, false)
	} else {
		removeKey(dev, "profile")
	}
	setKey(sysCfg, "location", jsonv.Value(&jsonv.Object{Keys: []string{"tz", "lat", "lon"}, Vals: []jsonv.Value{nil, nil, nil}}), false)
	setKey(sysCfg, "cfg_rev", json.Number("0"), false)
	removeKey(sysCfg, "ui_data")
	sysSt := b.status.Object("sys")
	for _, k := range []string{"cfg_rev", "kvs_rev", "schedule_rev", "webhook_rev", "uptime"} {
		setKey(sysSt, k, json.Number("0"), false)
	}
	removeKey(sysSt, "btrelay_rev")
	removeKey(sysSt, "bthc_rev")
	setKey(sysSt, "available_updates", jsonv.Value(&jsonv.Object{}), false)
	setKey(sysSt, "reset_reason", json.Number("1"), false)
	mqtt := b.config.Object("mqtt")
	setKey(mqtt, "client_id", id, false)
	setKey(mqtt, "topic_prefix", id, false)
	for _, s := range specs {
		if s == nil {
			return nil, errors.New("device: NewModel: a nil Spec")
		}
		if err := s.add(b); err != nil {
			return nil, fmt.Errorf("device: NewModel: %w", err)
		}
	}
	// Components in key order, as the firmware lists them; ws as every
	// model's.
	for _, o := range []*jsonv.Object{b.config, b.status} {
		sortObject(o)
	}
	infoObj := &jsonv.Object{}
	for _, f := range []jsonv.Field{
		{Key: "name", Val: nil}, {Key: "id", Val: id}, {Key: "mac", Val: jsonv.Templated(placeholderMAC)},
		{Key: "slot", Val: json.Number("0")}, {Key: "model", Val: info.Model}, {Key: "gen", Val: json.Number(strconv.Itoa(info.Gen))},
		{Key: "fw_id", Val: info.FwID}, {Key: "ver", Val: info.Ver}, {Key: "app", Val: info.App},
		{Key: "auth_en", Val: false}, {Key: "auth_domain", Val: nil},
	} {
		setKey(infoObj, f.Key, f.Val, false)
	}
	if info.Profile != "" {
		setKey(infoObj, "profile", info.Profile, false)
	}
	m := &Model{
		Name:     info.App,
		Model:    info.Model,
		App:      info.App,
		Ver:      info.Ver,
		Gen:      info.Gen,
		Profile:  info.Profile,
		IDPrefix: info.IDPrefix,
		DumpMAC:  placeholderMAC,
		Info:     infoObj,
		Config:   b.config,
		Status:   b.status,
		custom:   b.custom,
	}
	m.Keys = slices.Clone(m.Status.Keys)
	for _, k := range m.Config.Keys {
		if !slices.Contains(m.Keys, k) {
			m.Keys = append(m.Keys, k)
		}
	}
	return m, nil
}

// checkPrefix checks an id prefix: lower-case letters and digits.
func checkPrefix(p string) error {
	if p == "" {
		return errors.New("required, e.g. shellypro2pm")
	}
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("%q: want lower-case letters and digits only", p)
		}
	}
	return nil
}

// splitKey splits a component key into its type and instance (-1 for a
// singleton).
func splitKey(key string) (typ string, id int, err error) {
	typ, n, keyed := strings.Cut(key, ":")
	if typ == "" || strings.ToLower(typ) != typ || strings.ContainsAny(typ, " .\"") {
		return "", 0, fmt.Errorf("component key %q: want <type>:<id> or <type>, lower-case", key)
	}
	if !keyed {
		return typ, -1, nil
	}
	id, err = strconv.Atoi(n)
	if err != nil || id < 0 || strconv.Itoa(id) != n {
		return "", 0, fmt.Errorf("component key %q: the id must be a number", key)
	}
	return typ, id, nil
}

// sortObject orders o's keys as the firmware lists components.
func sortObject(o *jsonv.Object) {
	idx := make([]int, len(o.Keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return compareKeys(o.Keys[a], o.Keys[b]) })
	keys, vals := make([]string, len(idx)), make([]jsonv.Value, len(idx))
	for i, j := range idx {
		keys[i], vals[i] = o.Keys[j], o.Vals[j]
	}
	o.Keys, o.Vals = keys, vals
}

// compareKeys orders component keys by type, then by instance number.
func compareKeys(a, b string) int {
	ta, na, _ := strings.Cut(a, ":")
	tb, nb, _ := strings.Cut(b, ":")
	if c := strings.Compare(ta, tb); c != 0 {
		return c
	}
	ia, _ := strconv.Atoi(na)
	ib, _ := strconv.Atoi(nb)
	return ia - ib
}

// clone deep-copies o, so a model never shares a template it changes.
func clone(o *jsonv.Object) *jsonv.Object {
	if o == nil {
		return &jsonv.Object{}
	}
	c := &jsonv.Object{Keys: slices.Clone(o.Keys), Vals: make([]jsonv.Value, len(o.Vals))}
	for i, v := range o.Vals {
		c.Vals[i] = cloneValue(v)
	}
	return c
}

func cloneValue(v jsonv.Value) jsonv.Value {
	switch t := v.(type) {
	case *jsonv.Object:
		return clone(t)
	case []jsonv.Value:
		out := make([]jsonv.Value, len(t))
		for i, e := range t {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// setKey sets key of o to v, appending it when o lacks it (or, with
// first, putting it first).
func setKey(o *jsonv.Object, key string, v jsonv.Value, first bool) {
	for i, k := range o.Keys {
		if k == key {
			o.Vals[i] = v
			return
		}
	}
	if first {
		o.Keys, o.Vals = append([]string{key}, o.Keys...), append([]jsonv.Value{v}, o.Vals...)
		return
	}
	o.Keys, o.Vals = append(o.Keys, key), append(o.Vals, v)
}

// removeKey removes key from o.
func removeKey(o *jsonv.Object, key string) {
	for i, k := range o.Keys {
		if k == key {
			o.Keys = slices.Delete(o.Keys, i, i+1)
			o.Vals = slices.Delete(o.Vals, i, i+1)
			return
		}
	}
}

// patched returns a copy of the object v with p's fields set.
func patched(v jsonv.Value, p jsonv.Patch) jsonv.Value {
	o, ok := v.(*jsonv.Object)
	if !ok {
		return v
	}
	c := clone(o)
	for _, f := range p {
		setKey(c, f.Key, f.Val, false)
	}
	return c
}
