package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// fitID checks -id against the models, so that a device has one identity:
// its src, Shelly.GetDeviceInfo id, GET /shelly id, auth realm and MAC are
// one string. Without -profile, -id's prefix picks the model (the first
// profile with it in -profile help's order); with -profile, -id is the
// first device's id and must be one of the first profile's. The demo plays
// the default profile.
func (s *settings) fitID() error {
	if !s.idSet {
		return nil
	}
	prefix, mac, err := device.SplitID(s.id)
	if err != nil {
		return usageErr("-id: %v", err)
	}
	if !s.profileSet && !s.demo() {
		names := profile.WithPrefix(prefix)
		if len(names) == 0 {
			return usageErr("-id %q: no profile has ids %s-<MAC>; the prefixes that fit are those of -profile help: %s",
				s.id, prefix, strings.Join(profile.Prefixes(), ", "))
		}
		p, err := profile.Builtin(names[0])
		if err != nil {
			return usageErr("-id %q: %v", s.id, err)
		}
		s.profiles = []*device.Model{p}
	}
	p := s.profiles[0]
	if p.CheckID(s.id) == nil {
		return nil
	}
	if s.demo() {
		return usageErr("-id %q: the demo plays a Plus 1PM (%s), whose ids are %s; give -id %s",
			s.id, p.Name, p.IDPattern(), p.ID(mac))
	}
	msg := fmt.Sprintf("-id %q: the first device plays %s, whose ids are %s; give -id %s",
		s.id, p.Name, p.IDPattern(), p.ID(mac))
	if names := profile.WithPrefix(prefix); len(names) > 0 && prefix != p.IDPrefix {
		msg += fmt.Sprintf(", or name first in -profile a model with ids %s-<MAC> (%s)", prefix, strings.Join(names, ", "))
	}
	return usageErr("%s", msg)
}

// checkSleepers refuses -wakeup-period when none of the profiles sleeps:
// the flag sets the period of the models that sleep and never makes a
// mains model sleep.
func (s *settings) checkSleepers() error {
	var names []string
	for _, p := range s.profiles {
		if p.WakeupPeriod() > 0 {
			return nil
		}
		names = append(names, p.Name)
	}
	var sleepers []string
	for _, name := range profile.Names() {
		if p, err := profile.Builtin(name); err == nil && p.WakeupPeriod() > 0 {
			sleepers = append(sleepers, name)
		}
	}
	return usageErr("-wakeup-period: none of the profiles sleeps (%s); it sets the period of models whose dump has a sys.wakeup_period, e.g. %s",
		strings.Join(names, ", "), strings.Join(sleepers, ", "))
}

// wakeupFor is device.Options.WakeupPeriod for a device of p:
// -wakeup-period for a model that sleeps, and nothing (always on) for one
// that does not.
func (s *settings) wakeupFor(p *device.Model) time.Duration {
	if p.WakeupPeriod() > 0 {
		return s.wakeupPeriod
	}
	return 0
}

// deviceID is the id of device i, playing p: p's prefix and id style with
// the base id's MAC counted up by i.
func deviceID(base string, p *device.Model, i int) string {
	return p.ID(device.DeriveMAC(base[len(base)-12:], i))
}
