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
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/shellyws/shellyws/device"
)

// Default is the profile the simulator plays unless told otherwise.
const Default = "plus1pm-gen2"

//go:embed dumps/*.json dumps/README.md
var dumps embed.FS

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
var builtins sync.Map // name -> *device.Model

// Builtin returns the built-in profile name, parsed once per process.
func Builtin(name string) (*device.Model, error) {
	if p, ok := builtins.Load(name); ok {
		return p.(*device.Model), nil
	}
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("no built-in profile %q", name)
	}
	data, err := dumps.ReadFile(path.Join("dumps", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("no built-in profile %q (see -profile help)", name)
	}
	p, err := device.ParseModel(name, data)
	if err != nil {
		return nil, err
	}
	actual, _ := builtins.LoadOrStore(name, p)
	return actual.(*device.Model), nil
}

// Load reads a dump file; see Parse.
func Load(file string) (*device.Model, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return device.ParseModel(file, data)
}

// Lookup returns the built-in profile ref, or loads ref as a file when it
// names one (it contains a path separator or ends in .json).
func Lookup(ref string) (*device.Model, error) {
	if strings.ContainsAny(ref, "/\\") || strings.HasSuffix(ref, ".json") {
		return Load(ref)
	}
	return Builtin(ref)
}

// New returns a device of the built-in profile name (or of a dump file,
// as Lookup finds it) with the options o: a vendor's test starts any of
// the real models in a line. o.Model is set from the profile.
func New(name string, o device.Options) (*device.Device, error) {
	m, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	o.Model = m
	return device.New(o)
}
