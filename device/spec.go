package device

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shellyws/shellyws/internal/jsonv"
)

// Method names of the dump's keys.
const (
	methodDeviceInfo = "Shelly.GetDeviceInfo"
	methodConfig     = "Shelly.GetConfig"
	methodStatus     = "Shelly.GetStatus"
	methodList       = "Shelly.ListMethods"
	methodComponents = "Shelly.GetComponents"
)

// Model is what every device of one kind shares, immutable once a device
// uses it: its Shelly.GetDeviceInfo, the config and status of each of its
// components (keys in order, number literals as written), and its method
// list. ParseModel reads one from a real device's dump (package profile
// embeds 77); a device is then only its own id, MAC and state.
type Model struct {
	// Name is the profile name or the file path the model was loaded from.
	Name string
	// Model, App, Gen and Ver are the device info's fields ("" or 0 when
	// the dump lacks them).
	Model, App, Ver string
	Gen             int
	// Profile is the device info's "profile" (cover, switch, ...) or "".
	Profile string
	// IDPrefix is the part of the device id before "-<MAC>", e.g.
	// "shellyplus1pm" or "ShellyWallDisplay".
	IDPrefix string
	// UpperMAC is true when the model writes the MAC in its id in upper
	// case (the Wall Display).
	UpperMAC bool
	// DumpMAC is the captured device's MAC, upper-case.
	DumpMAC string

	// Info, Config and Status are the captured answers; strings holding
	// DumpMAC are Templated.
	Info, Config, Status *jsonv.Object
	// Methods is the captured Shelly.ListMethods list, nil when the dump
	// has none.
	Methods []string
	// Components is the captured Shelly.GetComponents answer, nil when
	// the dump has none.
	Components *jsonv.Object
	// Keys are the component keys of Status and Config, in order: Status's,
	// then Config-only ones.
	Keys []string

	custom  map[string]customMethod // CustomSpec methods, by lower-case name
	methods sync.Once               // builds table
	table   *model
}

// ID returns the id of the device with mac (12 hex digits, any case) in
// this model's style.
func (p *Model) ID(mac string) string {
	if p.UpperMAC {
		return p.IDPrefix + "-" + strings.ToUpper(mac)
	}
	return p.IDPrefix + "-" + strings.ToLower(mac)
}

// keyType returns the component type of key: "switch" for "switch:0".
func keyType(key string) string {
	t, _, _ := strings.Cut(key, ":")
	return t
}

// keyInstance returns the instance number of key (0 for "switch:0") and
// whether key has one.
func keyInstance(key string) (int, bool) {
	_, n, ok := strings.Cut(key, ":")
	if !ok {
		return 0, false
	}
	id := 0
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + int(c-'0')
	}
	return id, n != ""
}

// ParseModel builds a model named name from a dump: a JSON object with the
// keys Shelly.GetDeviceInfo, Shelly.GetConfig and Shelly.GetStatus (each
// the call's result object) and optionally Shelly.ListMethods and
// Shelly.GetComponents; other keys (source, license, notes) are ignored.
func ParseModel(name string, data []byte) (*Model, error) {
	doc, err := jsonv.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: not valid JSON: %v", name, err)
	}
	top, ok := doc.(*jsonv.Object)
	if !ok {
		return nil, fmt.Errorf("model %s: not a JSON object", name)
	}
	p := &Model{Name: name}
	for _, m := range []struct {
		key string
		dst **jsonv.Object
	}{{methodDeviceInfo, &p.Info}, {methodConfig, &p.Config}, {methodStatus, &p.Status}} {
		*m.dst = top.Object(m.key)
		if *m.dst == nil {
			return nil, fmt.Errorf("model %s: no %s object", name, m.key)
		}
	}
	id, _ := p.Info.String("id")
	mac, _ := p.Info.String("mac")
	if len(id) < 14 || id[len(id)-13] != '-' || !isHex(id[len(id)-12:]) {
		return nil, fmt.Errorf("model %s: device info id %q is not <prefix>-<12 hex digits>", name, id)
	}
	p.IDPrefix, p.DumpMAC = id[:len(id)-13], strings.ToUpper(id[len(id)-12:])
	if mac != "" && !strings.EqualFold(mac, p.DumpMAC) {
		return nil, fmt.Errorf("model %s: device info mac %q is not the MAC of id %q", name, mac, id)
	}
	p.UpperMAC = id[len(id)-12:] != strings.ToLower(id[len(id)-12:])
	p.Model, _ = p.Info.String("model")
	p.App, _ = p.Info.String("app")
	p.Ver, _ = p.Info.String("ver")
	p.Profile, _ = p.Info.String("profile")
	if g, ok := p.Info.Number("gen"); ok {
		p.Gen = int(g)
	}
	if v, ok := top.Get(methodList); ok {
		if p.Methods, err = readMethods(v); err != nil {
			return nil, fmt.Errorf("model %s: %s: %v", name, methodList, err)
		}
	}
	p.Components = top.Object(methodComponents)
	for _, o := range []*jsonv.Object{p.Info, p.Config, p.Status, p.Components} {
		if o != nil {
			jsonv.TemplateMAC(o, p.DumpMAC)
		}
	}
	p.Keys = slices.Clone(p.Status.Keys)
	for _, k := range p.Config.Keys {
		if !slices.Contains(p.Keys, k) {
			p.Keys = append(p.Keys, k)
		}
	}
	return p, nil
}

// readMethods reads a captured Shelly.ListMethods answer.
func readMethods(v jsonv.Value) ([]string, error) {
	obj, ok := v.(*jsonv.Object)
	if !ok {
		return nil, errors.New("not an object")
	}
	arr, ok := obj.Get("methods")
	list, isArr := arr.([]jsonv.Value)
	if !ok || !isArr {
		return nil, errors.New("no methods array")
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		s, ok := m.(string)
		if !ok {
			return nil, errors.New("a method name is not a string")
		}
		out = append(out, s)
	}
	return out, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// SplitID splits a device id, "<prefix>-<12 hex digits>", into its model
// prefix and its MAC as written. The prefix may itself hold a '-' (the
// ST-802's "st-802").
func SplitID(id string) (prefix, mac string, err error) {
	if len(id) < 14 || id[len(id)-13] != '-' || !isHex(id[len(id)-12:]) {
		return "", "", fmt.Errorf("device id %q: want <model prefix>-<12 hex digits>, e.g. shellyplus1pm-c049ef8cf4e0", id)
	}
	prefix = id[:len(id)-13]
	for _, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", "", fmt.Errorf("device id %q: the model prefix may hold only letters, digits, '-' and '_'", id)
		}
	}
	return prefix, id[len(id)-12:], nil
}

// IDPattern describes the ids of the model, e.g.
// "shellyplus1pm-<12 lowercase hex digits>", for error messages.
func (p *Model) IDPattern() string {
	if p.UpperMAC {
		return p.IDPrefix + "-<12 upper-case hex digits>"
	}
	return p.IDPrefix + "-<12 lowercase hex digits>"
}

// CheckID reports whether id is the id of a device of this model: its
// prefix and the case of its MAC are the model's, so that the device's
// src, its Shelly.GetDeviceInfo id and its auth realm are one string.
func (p *Model) CheckID(id string) error {
	prefix, mac, err := SplitID(id)
	if err != nil {
		return err
	}
	if prefix != p.IDPrefix {
		return fmt.Errorf("device id %q does not fit model %s, whose ids are %s", id, p.Name, p.IDPattern())
	}
	if want := p.ID(mac); id != want {
		return fmt.Errorf("device id %q: model %s writes its ids as %s (%s)", id, p.Name, p.IDPattern(), want)
	}
	return nil
}

// WakeupPeriod returns the period a device of the model sleeps between
// wakes, its dump's sys.wakeup_period; 0 for a model that is always on.
func (p *Model) WakeupPeriod() time.Duration {
	secs, _ := p.Status.Object("sys").Number("wakeup_period")
	return time.Duration(secs) * time.Second
}
