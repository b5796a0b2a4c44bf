package profile

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

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
func (p *Profile) IDPattern() string {
	if p.UpperMAC {
		return p.IDPrefix + "-<12 upper-case hex digits>"
	}
	return p.IDPrefix + "-<12 lowercase hex digits>"
}

// CheckID reports whether id is the id of a device of this model: its
// prefix and the case of its MAC are the model's, so that the device's
// src, its Shelly.GetDeviceInfo id and its auth realm are one string.
func (p *Profile) CheckID(id string) error {
	prefix, mac, err := SplitID(id)
	if err != nil {
		return err
	}
	if prefix != p.IDPrefix {
		return fmt.Errorf("device id %q does not fit profile %s, whose ids are %s", id, p.Name, p.IDPattern())
	}
	if want := p.ID(mac); id != want {
		return fmt.Errorf("device id %q: profile %s writes its ids as %s (%s)", id, p.Name, p.IDPattern(), want)
	}
	return nil
}

// WakeupPeriod returns the period a device of the model sleeps between
// wakes, its dump's sys.wakeup_period; 0 for a model that is always on.
func (p *Profile) WakeupPeriod() time.Duration {
	secs, _ := p.Status.Object("sys").Number("wakeup_period")
	return time.Duration(secs) * time.Second
}

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
		if prefix, _, err := SplitID(d.Info.ID); err == nil {
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
func ForID(id string) (*Profile, error) {
	prefix, _, err := SplitID(id)
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
