// Package profile holds the device models the simulator plays: real
// answers of Shelly Gen2, Gen3 and Gen4 devices (Shelly.GetDeviceInfo,
// Shelly.GetConfig, Shelly.GetStatus, and where captured Shelly.ListMethods
// and Shelly.GetComponents), parsed once and shared read-only by every
// simulated device of the model.
//
// The built-in profiles are the complete dumps of the repository's shared
// fixtures, embedded from dumps/ with the README that names their sources and
// licenses; each is named after its file without .json, e.g. "plus1pm-gen2".
// Load reads a dump file of the same format.
package profile

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

// Default is the profile the simulator plays unless told otherwise.
const Default = "plus1pm-gen2"

// Method names of the dump's keys.
const (
	methodDeviceInfo = "Shelly.GetDeviceInfo"
	methodConfig     = "Shelly.GetConfig"
	methodStatus     = "Shelly.GetStatus"
	methodList       = "Shelly.ListMethods"
	methodComponents = "Shelly.GetComponents"
)

//go:embed dumps/*.json dumps/README.md
var dumps embed.FS

// Profile is one device model, immutable once loaded: share it.
type Profile struct {
	// Name is the built-in name or the file path it was loaded from.
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
	Info, Config, Status *Object
	// Methods is the captured Shelly.ListMethods list, nil when the dump
	// has none.
	Methods []string
	// Components is the captured Shelly.GetComponents answer, nil when
	// the dump has none.
	Components *Object
	// Keys are the component keys of Status and Config, in order: Status's,
	// then Config-only ones.
	Keys []string
}

// ID returns the id of the device with mac (12 hex digits, any case) in
// this model's style.
func (p *Profile) ID(mac string) string {
	if p.UpperMAC {
		return p.IDPrefix + "-" + strings.ToUpper(mac)
	}
	return p.IDPrefix + "-" + strings.ToLower(mac)
}

// Type returns the component type of key: "switch" for "switch:0".
func Type(key string) string {
	t, _, _ := strings.Cut(key, ":")
	return t
}

// Instance returns the instance number of key (0 for "switch:0") and
// whether key has one.
func Instance(key string) (int, bool) {
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

// Parse builds a profile named name from a dump: a JSON object with the
// keys Shelly.GetDeviceInfo, Shelly.GetConfig and Shelly.GetStatus (each
// the call's result object) and optionally Shelly.ListMethods and
// Shelly.GetComponents; other keys (source, license, notes) are ignored.
func Parse(name string, data []byte) (*Profile, error) {
	doc, err := parseDocument(data)
	if err != nil {
		return nil, fmt.Errorf("profile %s: not valid JSON: %v", name, err)
	}
	top, ok := doc.(*Object)
	if !ok {
		return nil, fmt.Errorf("profile %s: not a JSON object", name)
	}
	p := &Profile{Name: name}
	for _, m := range []struct {
		key string
		dst **Object
	}{{methodDeviceInfo, &p.Info}, {methodConfig, &p.Config}, {methodStatus, &p.Status}} {
		*m.dst = top.Object(m.key)
		if *m.dst == nil {
			return nil, fmt.Errorf("profile %s: no %s object", name, m.key)
		}
	}
	id, _ := p.Info.String("id")
	mac, _ := p.Info.String("mac")
	if len(id) < 14 || id[len(id)-13] != '-' || !isHex(id[len(id)-12:]) {
		return nil, fmt.Errorf("profile %s: device info id %q is not <prefix>-<12 hex digits>", name, id)
	}
	p.IDPrefix, p.DumpMAC = id[:len(id)-13], strings.ToUpper(id[len(id)-12:])
	if mac != "" && !strings.EqualFold(mac, p.DumpMAC) {
		return nil, fmt.Errorf("profile %s: device info mac %q is not the MAC of id %q", name, mac, id)
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
			return nil, fmt.Errorf("profile %s: %s: %v", name, methodList, err)
		}
	}
	p.Components = top.Object(methodComponents)
	for _, o := range []*Object{p.Info, p.Config, p.Status, p.Components} {
		if o != nil {
			templateMAC(o, p.DumpMAC)
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
func readMethods(v Value) ([]string, error) {
	obj, ok := v.(*Object)
	if !ok {
		return nil, errors.New("not an object")
	}
	arr, ok := obj.Get("methods")
	list, isArr := arr.([]Value)
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

// Names returns the built-in profile names, sorted.
func Names() []string {
	entries, _ := dumps.ReadDir("dumps")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Notes returns the README kept beside the embedded dumps: their sources,
// licenses and what their publishers changed.
func Notes() string {
	b, _ := dumps.ReadFile("dumps/README.md")
	return string(b)
}

// builtins caches parsed built-in profiles: a fleet of any size parses
// each model once.
var builtins sync.Map // name -> *Profile

// Builtin returns the built-in profile name, parsed once per process.
func Builtin(name string) (*Profile, error) {
	if p, ok := builtins.Load(name); ok {
		return p.(*Profile), nil
	}
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("no built-in profile %q", name)
	}
	data, err := dumps.ReadFile(path.Join("dumps", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("no built-in profile %q (see -profile help)", name)
	}
	p, err := Parse(name, data)
	if err != nil {
		return nil, err
	}
	actual, _ := builtins.LoadOrStore(name, p)
	return actual.(*Profile), nil
}

// Load reads a dump file; see Parse.
func Load(file string) (*Profile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Lookup returns the built-in profile ref, or loads ref as a file when it
// names one (it contains a path separator or ends in .json).
func Lookup(ref string) (*Profile, error) {
	if strings.ContainsAny(ref, "/\\") || strings.HasSuffix(ref, ".json") {
		return Load(ref)
	}
	return Builtin(ref)
}
