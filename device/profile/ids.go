package profile

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/shellyws/shellyws/device"
)

// builtinID is a built-in profile's name and id prefix.
type builtinID struct{ name, prefix string }

// builtinIDs lists the built-in profiles' id prefixes in Names order. It
// reads only each dump's device id, so it keeps no parsed profile alive.
var builtinIDs = sync.OnceValue(func() []builtinID {
	var out []builtinID
	for _, name := range Names() {
		data, err := dumps.ReadFile(path.Join("dumps", name+".json"))
		if err != nil {
			continue
		}
		var d struct {
			Info struct {
				ID string `json:"id"`
			} `json:"Shelly.GetDeviceInfo"`
		}
		if json.Unmarshal(data, &d) != nil {
			continue
		}
		if prefix, _, err := device.SplitID(d.Info.ID); err == nil {
			out = append(out, builtinID{name, prefix})
		}
	}
	return out
})

// WithPrefix returns the names of the built-in profiles whose ids have
// prefix, in Names order.
func WithPrefix(prefix string) []string {
	var names []string
	for _, b := range builtinIDs() {
		if b.prefix == prefix {
			names = append(names, b.name)
		}
	}
	return names
}

// Prefixes returns the id prefixes of the built-in profiles, sorted, each
// once.
func Prefixes() []string {
	var out []string
	for _, b := range builtinIDs() {
		out = append(out, b.prefix)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ForID returns the model a device with id plays when no profile is named:
// the first built-in profile (in Names order) whose ids have id's prefix.
// It fails, naming the prefixes there are, when no built-in profile has it.
func ForID(id string) (*device.Model, error) {
	prefix, _, err := device.SplitID(id)
	if err != nil {
		return nil, err
	}
	names := WithPrefix(prefix)
	if len(names) == 0 {
		return nil, fmt.Errorf("device id %q: no profile has ids %s-<MAC>; the prefixes there are: %s",
			id, prefix, strings.Join(Prefixes(), ", "))
	}
	return Builtin(names[0])
}
