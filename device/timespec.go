package device

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxTimespec bounds a timespec's length, in bytes.
const maxTimespec = 256

// maxSunOffset is the largest offset from sunrise or sunset, as the
// firmware's cron library allows.
const maxSunOffset = 12 * time.Hour

// A timespec is when a schedule job runs (protocol section 15.6): six cron
// fields "sec min hour day-of-month month day-of-week", or @sunrise /
// @sunset with an optional offset and the three day fields.
type timespec struct {
	sec, min, hour, dom, month, dow uint64 // bit i set: value i matches
	sun                             int    // 0: cron; sunrise or sunset
	offset                          time.Duration
}

// Sun events of a timespec.
const (
	sunrise = 1
	sunset  = 2
)

// cronField is the range and names of one cron field.
type cronField struct {
	name     string
	lo, hi   int
	names    []string // names[i] is value lo+i
	question bool     // "?" allowed (any value)
}

var (
	fieldSec   = cronField{name: "second", lo: 0, hi: 59}
	fieldMin   = cronField{name: "minute", lo: 0, hi: 59}
	fieldHour  = cronField{name: "hour", lo: 0, hi: 23}
	fieldDom   = cronField{name: "day of month", lo: 1, hi: 31, question: true}
	fieldMonth = cronField{name: "month", lo: 1, hi: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// Day of week 7 is Sunday too, as in cron.
	fieldDow = cronField{name: "day of week", lo: 0, hi: 7, question: true,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
)

// parseTimespec parses a schedule's timespec; the error says what is wrong.
func parseTimespec(s string) (*timespec, error) {
	if len(s) > maxTimespec {
		return nil, fmt.Errorf("longer than %d bytes", maxTimespec)
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, errors.New("empty")
	}
	t := &timespec{}
	var err error
	if strings.HasPrefix(f[0], "@") {
		if err := t.parseSun(f[0]); err != nil {
			return nil, err
		}
		switch len(f) {
		case 1:
			f = []string{"*", "*", "*"}
		case 4:
			f = f[1:]
		default:
			return nil, fmt.Errorf("want %s followed by nothing or by day of month, month and day of week", f[0])
		}
		t.sec, t.min, t.hour = 1, 1, 1 // 0:00:00; unused
	} else {
		if len(f) != 6 {
			return nil, fmt.Errorf("want 6 fields (second minute hour day-of-month month day-of-week), got %d", len(f))
		}
		if t.sec, err = fieldSec.parse(f[0]); err != nil {
			return nil, err
		}
		if t.min, err = fieldMin.parse(f[1]); err != nil {
			return nil, err
		}
		if t.hour, err = fieldHour.parse(f[2]); err != nil {
			return nil, err
		}
		f = f[3:]
	}
	if t.dom, err = fieldDom.parse(f[0]); err != nil {
		return nil, err
	}
	if t.month, err = fieldMonth.parse(f[1]); err != nil {
		return nil, err
	}
	if t.dow, err = fieldDow.parse(f[2]); err != nil {
		return nil, err
	}
	if t.dow&(1<<7) != 0 {
		t.dow = t.dow&^(1<<7) | 1
	}
	return t, nil
}

// parseSun parses "@sunrise" or "@sunset" with an optional offset: a sign
// and one or more numbers with unit h, m or s (none: seconds), e.g.
// "@sunset-1h30m", "@sunrise+1.5h", "@sunrise+00h00m".
func (t *timespec) parseSun(s string) error {
	switch {
	case strings.HasPrefix(s, "@sunrise"):
		t.sun, s = sunrise, s[len("@sunrise"):]
	case strings.HasPrefix(s, "@sunset"):
		t.sun, s = sunset, s[len("@sunset"):]
	default:
		return fmt.Errorf("%q: want @sunrise or @sunset", s)
	}
	if s == "" {
		return nil
	}
	neg := s[0] == '-'
	if s[0] != '+' && !neg {
		return fmt.Errorf("the offset %q must start with + or -", s)
	}
	rest := s[1:]
	if rest == "" {
		return errors.New("an empty offset")
	}
	var total float64
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if i == 0 || err != nil {
			return fmt.Errorf("the offset %q: want numbers with h, m or s", s)
		}
		unit := 1.0
		if i < len(rest) {
			switch rest[i] {
			case 'h':
				unit = 3600
			case 'm':
				unit = 60
			case 's':
			default:
				return fmt.Errorf("the offset %q: unit %q is not h, m or s", s, rest[i])
			}
			i++
		}
		total += n * unit
		if total > maxSunOffset.Seconds() {
			return fmt.Errorf("the offset %q is more than 12 hours", s)
		}
		rest = rest[i:]
	}
	t.offset = time.Duration(total * float64(time.Second)).Round(time.Second)
	if neg {
		t.offset = -t.offset
	}
	return nil
}

// parse parses one cron field: "*", "?" where allowed, or a comma list of
// values, ranges "a-b" and steps "*/n", "a/n", "a-b/n"; names (JAN, MON)
// in any case. Leading zeros are refused, as the firmware documents.
func (c cronField) parse(s string) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(item, "/")
		lo, hi := c.lo, c.hi
		switch {
		case rng == "*":
		case rng == "?" && c.question && !hasStep:
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = c.value(a); err != nil {
				return 0, err
			}
			switch {
			case isRange:
				if hi, err = c.value(b); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s range %q runs backwards", c.name, rng)
				}
			case !hasStep:
				hi = lo
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 || n > c.hi || stepStr[0] == '0' || stepStr[0] == '+' {
				return 0, fmt.Errorf("%s step %q: want a number from 1 to %d", c.name, stepStr, c.hi)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value parses one value of the field: a number in range or a name.
func (c cronField) value(s string) (int, error) {
	for i, n := range c.names {
		if strings.EqualFold(s, n) {
			return c.lo + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%s %q is not a number", c.name, s)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%s %q: leading zeros are not supported", c.name, s)
	}
	if n < c.lo || n > c.hi {
		return 0, fmt.Errorf("%s %d is out of range %d-%d", c.name, n, c.lo, c.hi)
	}
	return n, nil
}

func has(set uint64, v int) bool { return set&(1<<v) != 0 }

// dayOK reports whether a day matches the day fields: day of month and
// day of week must both match (as the firmware's cron library has it).
func (t *timespec) dayOK(day int, wd time.Weekday) bool {
	return has(t.dom, day) && has(t.dow, int(wd))
}

// place is where and in which time zone a device is (sys.location).
type place struct {
	loc      *time.Location
	lat, lon float64
	coords   bool // lat and lon are set
}

// horizon bounds the search for a next run: a timespec that matches no
// day within it (31 February) never runs.
const horizon = 30

// next returns the first time after from that t matches at p; false when
// there is none (no coordinates for @sunrise, a day that never comes).
func (t *timespec) next(from time.Time, p place) (time.Time, bool) {
	if t.sun != 0 {
		return t.nextSun(from, p)
	}
	loc := p.loc
	limit := from.AddDate(horizon, 0, 0)
	c := from.In(loc).Truncate(time.Second).Add(time.Second)
	// Each step moves forward in absolute time, so the search ends even
	// across daylight saving changes.
	for c.Before(limit) {
		y, mo, d := c.Date()
		h, mi, s := c.Clock()
		switch {
		case !has(t.month, int(mo)):
			c = later(c, time.Date(y, mo+1, 1, 0, 0, 0, 0, loc))
		case !t.dayOK(d, c.Weekday()):
			c = later(c, time.Date(y, mo, d+1, 0, 0, 0, 0, loc))
		case !has(t.hour, h):
			c = c.Add(time.Duration(60-mi)*time.Minute - time.Duration(s)*time.Second)
		case !has(t.min, mi):
			c = c.Add(time.Duration(60-s) * time.Second)
		case !has(t.sec, s):
			c = c.Add(time.Second)
		case repeated(c):
			c = c.Add(time.Second) // the hour a clock set back repeats runs once
		default:
			return c, true
		}
	}
	return time.Time{}, false
}

// repeated reports whether the wall-clock time of c happened before, in
// the hour or so that a daylight saving change set the clock back.
func repeated(c time.Time) bool {
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		p := c.Add(-back)
		if p.Hour() == c.Hour() && p.Minute() == c.Minute() && p.Second() == c.Second() && p.Day() == c.Day() {
			return true
		}
	}
	return false
}

// later returns to, or an hour after cur where a time zone change made to
// no later than cur.
func later(cur, to time.Time) time.Time {
	if !to.After(cur) {
		return cur.Add(time.Hour)
	}
	return to
}

// nextSun returns the first sunrise or sunset (plus the offset) after
// from, on a local day the day fields match.
func (t *timespec) nextSun(from time.Time, p place) (time.Time, bool) {
	if !p.coords {
		return time.Time{}, false
	}
	f := from.In(p.loc)
	y, mo, d := f.Date()
	// From the day before: a positive offset moves yesterday's event
	// into today.
	for i := -1; i <= 400; i++ {
		day := time.Date(y, mo, d+i, 12, 0, 0, 0, p.loc)
		dy, dm, dd := day.Date()
		if !has(t.month, int(dm)) || !t.dayOK(dd, day.Weekday()) {
			continue
		}
		at, ok := sunEvent(dy, dm, dd, p.lat, p.lon, t.sun == sunrise)
		if !ok {
			continue // polar day or night
		}
		if at = at.Add(t.offset).Truncate(time.Second); at.After(from) {
			return at, true
		}
	}
	return time.Time{}, false
}

// sunEvent returns the sunrise (rise) or sunset of the calendar day y-m-d
// at latitude lat and longitude lon (degrees, east and north positive), in
// UTC, with NOAA's solar position equations (accurate to about a minute
// between ±72° of latitude); false when the sun does not rise or set
// that day.
func sunEvent(y int, m time.Month, d int, lat, lon float64, rise bool) (time.Time, bool) {
	midnight := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	jd := float64(midnight.Unix())/86400 + 2440587.5
	// From solar noon, each pass uses the sun's position at the last
	// estimate.
	minutes := 720 - 4*lon
	for range 3 {
		decl, eqTime := sunPosition(jd + minutes/1440)
		latR, declR := lat*math.Pi/180, decl*math.Pi/180
		cosHA := math.Cos(90.833*math.Pi/180)/(math.Cos(latR)*math.Cos(declR)) - math.Tan(latR)*math.Tan(declR)
		if cosHA < -1 || cosHA > 1 || math.IsNaN(cosHA) {
			return time.Time{}, false
		}
		ha := math.Acos(cosHA) * 180 / math.Pi
		if rise {
			minutes = 720 - 4*(lon+ha) - eqTime
		} else {
			minutes = 720 - 4*(lon-ha) - eqTime
		}
	}
	return midnight.Add(time.Duration(minutes * float64(time.Minute))), true
}

// sunPosition returns the sun's declination (degrees) and the equation of
// time (minutes) at Julian day jd.
func sunPosition(jd float64) (decl, eqTime float64) {
	const rad = math.Pi / 180
	t := (jd - 2451545) / 36525 // Julian centuries since J2000
	l0 := math.Mod(280.46646+t*(36000.76983+t*0.0003032), 360)
	m := 357.52911 + t*(35999.05029-0.0001537*t)
	e := 0.016708634 - t*(0.000042037+0.0000001267*t)
	c := math.Sin(m*rad)*(1.914602-t*(0.004817+0.000014*t)) + math.Sin(2*m*rad)*(0.019993-0.000101*t) + math.Sin(3*m*rad)*0.000289
	omega := 125.04 - 1934.136*t
	lambda := l0 + c - 0.00569 - 0.00478*math.Sin(omega*rad)
	eps0 := 23 + (26+(21.448-t*(46.815+t*(0.00059-t*0.001813)))/60)/60
	eps := eps0 + 0.00256*math.Cos(omega*rad)
	decl = math.Asin(math.Sin(eps*rad)*math.Sin(lambda*rad)) / rad
	y := math.Pow(math.Tan(eps*rad/2), 2)
	eqTime = 4 / rad * (y*math.Sin(2*l0*rad) - 2*e*math.Sin(m*rad) + 4*e*y*math.Sin(m*rad)*math.Cos(2*l0*rad) -
		0.5*y*y*math.Sin(4*l0*rad) - 1.25*e*e*math.Sin(2*m*rad))
	return decl, eqTime
}

// zones caches the time zones loaded by name: a fleet's schedules do not
// read the zone files at every run. Only names that load are kept, so it
// is bounded by the zone database.
var zones sync.Map // string -> *time.Location

// zone returns the time zone named name (IANA, e.g. "Europe/Rome"); UTC
// for "" and for a name the host's zone database does not know.
func zone(name string) *time.Location {
	if name == "" || name == "Local" {
		return time.UTC
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	zones.Store(name, l)
	return l
}
