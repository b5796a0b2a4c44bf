package device

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTimespec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		ok   bool
		msg  string
	}{
		{"0 0 22 * * FRI", true, ""},
		{"*/1 * * * * *", true, ""},
		{"0 34 17 * * SUN,MON,TUE,WED,THU,FRI,SAT", true, ""},
		{"0 0 7 * * mon-fri", true, ""},
		{"*/15 * 1-4 * * *", true, ""},
		{"0 */2 1-4 * * *", true, ""},
		{"0 30 23 30 * *", true, ""},
		{"0 0 9 1-7 JAN-MAR,dec 1", true, ""},
		{"0 0 0 ? * 7", true, ""},
		{"5-50/5 0 0 * * *", true, ""},
		{"10/20 0 0 * * *", true, ""},
		{"  0  0   8 * * *  ", true, ""},
		{"@sunrise", true, ""},
		{"@sunset", true, ""},
		{"@sunset-15m", true, ""},
		{"@sunset+1h30m", true, ""},
		{"@sunrise+4h1m10s", true, ""},
		{"@sunrise+1.5h", true, ""},
		{"@sunrise+30", true, ""},
		{"@sunrise+00h00m * * MON,TUE,WED,THU,FRI", true, ""},
		{"@sunset-1h30m 1 * *", true, ""},
		{"@sunset+12h", true, ""},

		{"", false, "empty"},
		{"0 0 22 * *", false, "6 fields"},
		{"0 0 22 * * * 2025", false, "6 fields"},
		{"60 * * * * *", false, "out of range"},
		{"* 60 * * * *", false, "out of range"},
		{"* * 24 * * *", false, "out of range"},
		{"* * * 0 * *", false, "out of range"},
		{"* * * 32 * *", false, "out of range"},
		{"* * * * 13 *", false, "out of range"},
		{"* * * * * 8", false, "out of range"},
		{"0 0 08 * * *", false, "leading zeros"},
		{"0 0 8-5 * * *", false, "backwards"},
		{"*/0 * * * * *", false, "step"},
		{"*/x * * * * *", false, "step"},
		{"*/07 * * * * *", false, "step"},
		{"? * * * * *", false, "not a number"},
		{"0 0 0 ?/2 * *", false, "not a number"},
		{"0 0 0 * * FUN", false, "not a number"},
		{"0 0 0 L * *", false, "not a number"},
		{"0 0 0 * * 5L", false, "not a number"},
		{"0 0 0 * * 2#1", false, "not a number"},
		{"0 0 0 15W * *", false, "not a number"},
		{"-1 * * * * *", false, "not a number"},
		{"+1 * * * * *", false, "not a number"},
		{"1,,2 * * * * *", false, "not a number"},
		{"@noon", false, "@sunrise or @sunset"},
		{"@sunrise+", false, "empty offset"},
		{"@sunrise30m", false, "+ or -"},
		{"@sunrise+13h", false, "12 hours"},
		{"@sunrise+1d", false, "unit"},
		{"@sunrise+h", false, "numbers"},
		{"@sunrise * *", false, "day of month, month and day of week"},
		{"@sunrise 0 0 0 * * *", false, "day of month, month and day of week"},
		{"@sunrise * 13 *", false, "out of range"},
		{string(make([]byte, 300)), false, "longer"},
	} {
		_, err := parseTimespec(tc.spec)
		if tc.ok {
			assert.NoError(t, err, "%q", tc.spec)
		} else if assert.Error(t, err, "%q", tc.spec) {
			assert.Contains(t, err.Error(), tc.msg, "%q", tc.spec)
		}
	}
	ts, err := parseTimespec("@sunset-1h30m 1 * *")
	require.NoError(t, err)
	assert.Equal(t, -90*time.Minute, ts.offset)
	assert.Equal(t, sunset, ts.sun)
	ts, err = parseTimespec("@sunrise+30")
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, ts.offset, "no unit: seconds")
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func TestTimespecNext(t *testing.T) {
	rome := mustZone(t, "Europe/Rome")
	utc := place{loc: time.UTC}
	at := func(loc *time.Location, y int, m time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, m, d, h, mi, s, 0, loc)
	}
	// 2017-08-29 22:00:20 is a Tuesday.
	base := at(time.UTC, 2017, 8, 29, 22, 0, 20)
	for _, tc := range []struct {
		spec string
		p    place
		from time.Time
		want []time.Time
	}{
		{"* * * * * *", utc, base, []time.Time{at(time.UTC, 2017, 8, 29, 22, 0, 21), at(time.UTC, 2017, 8, 29, 22, 0, 22)}},
		{"0 * * * * *", utc, base, []time.Time{at(time.UTC, 2017, 8, 29, 22, 1, 0), at(time.UTC, 2017, 8, 29, 22, 2, 0)}},
		{"0 0 * * * *", utc, base, []time.Time{at(time.UTC, 2017, 8, 29, 23, 0, 0), at(time.UTC, 2017, 8, 30, 0, 0, 0)}},
		{"0 0 0 1 * *", utc, base, []time.Time{at(time.UTC, 2017, 9, 1, 0, 0, 0), at(time.UTC, 2017, 10, 1, 0, 0, 0)}},
		{"*/15 * * * * *", utc, base, []time.Time{at(time.UTC, 2017, 8, 29, 22, 0, 30), at(time.UTC, 2017, 8, 29, 22, 0, 45), at(time.UTC, 2017, 8, 29, 22, 1, 0)}},
		{"* * * 5 9 *", utc, base, []time.Time{at(time.UTC, 2017, 9, 5, 0, 0, 0), at(time.UTC, 2017, 9, 5, 0, 0, 1)}},
		{"0 0 0 31 * *", utc, base, []time.Time{at(time.UTC, 2017, 8, 31, 0, 0, 0), at(time.UTC, 2017, 10, 31, 0, 0, 0), at(time.UTC, 2017, 12, 31, 0, 0, 0)}},
		{"0 0 0 * * 3", utc, base, []time.Time{at(time.UTC, 2017, 8, 30, 0, 0, 0), at(time.UTC, 2017, 9, 6, 0, 0, 0)}},
		{"0 0 9 1-7 * 1", utc, base, []time.Time{at(time.UTC, 2017, 9, 4, 9, 0, 0), at(time.UTC, 2017, 10, 2, 9, 0, 0), at(time.UTC, 2017, 11, 6, 9, 0, 0)}},
		{"0 0 0 * * 7", utc, base, []time.Time{at(time.UTC, 2017, 9, 3, 0, 0, 0)}},
		{"0 0 0 29 2 *", utc, base, []time.Time{at(time.UTC, 2020, 2, 29, 0, 0, 0), at(time.UTC, 2024, 2, 29, 0, 0, 0)}},
		// The device's time zone.
		{"0 0 22 * * FRI", place{loc: rome}, at(time.UTC, 2025, 3, 14, 15, 9, 26), []time.Time{at(time.UTC, 2025, 3, 14, 21, 0, 0), at(time.UTC, 2025, 3, 21, 21, 0, 0)}},
		// A time that does not exist the night the clock goes forward is
		// skipped; one that happens twice when it goes back runs once.
		{"0 30 2 * * *", place{loc: rome}, at(rome, 2025, 3, 29, 3, 0, 0), []time.Time{at(rome, 2025, 3, 31, 2, 30, 0)}},
		{"0 30 2 * * *", place{loc: rome}, at(rome, 2025, 10, 26, 0, 0, 0), []time.Time{at(time.UTC, 2025, 10, 26, 0, 30, 0), at(time.UTC, 2025, 10, 27, 1, 30, 0)}},
		{"0 0 * * * *", place{loc: rome}, at(time.UTC, 2025, 10, 25, 23, 30, 0), []time.Time{at(time.UTC, 2025, 10, 26, 0, 0, 0), at(time.UTC, 2025, 10, 26, 2, 0, 0)}},
	} {
		ts, err := parseTimespec(tc.spec)
		require.NoError(t, err, tc.spec)
		from := tc.from
		for i, want := range tc.want {
			got, ok := ts.next(from, tc.p)
			require.True(t, ok, "%q run %d", tc.spec, i)
			assert.True(t, want.Equal(got), "%q run %d: want %v, got %v", tc.spec, i, want.UTC(), got.UTC())
			from = got
		}
	}
	never, err := parseTimespec("0 0 0 31 2 *")
	require.NoError(t, err)
	_, ok := never.next(base, utc)
	assert.False(t, ok, "31 February never comes")
}

// TestSunEvent checks sunrise and sunset against NOAA's solar calculator
// (rounded to the minute, as it shows them).
func TestSunEvent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lat, lon float64
		day      time.Time // the calendar day
		rise     bool
		want     time.Time // UTC
	}{
		{"Moscow", 55.75, 37.58, time.Date(2017, 8, 30, 0, 0, 0, 0, time.UTC), true, time.Date(2017, 8, 30, 2, 31, 0, 0, time.UTC)},
		{"Moscow", 55.75, 37.58, time.Date(2017, 8, 30, 0, 0, 0, 0, time.UTC), false, time.Date(2017, 8, 30, 16, 29, 0, 0, time.UTC)},
		{"Albuquerque", 35.083955, -106.6333, time.Date(2017, 8, 30, 0, 0, 0, 0, time.UTC), true, time.Date(2017, 8, 30, 12, 38, 0, 0, time.UTC)},
		{"Albuquerque", 35.083955, -106.6333, time.Date(2017, 8, 29, 0, 0, 0, 0, time.UTC), false, time.Date(2017, 8, 30, 1, 37, 0, 0, time.UTC)},
		{"Sydney", -33.87, 151.22, time.Date(2017, 8, 31, 0, 0, 0, 0, time.UTC), true, time.Date(2017, 8, 30, 20, 15, 0, 0, time.UTC)},
		{"Sydney", -33.87, 151.22, time.Date(2017, 8, 30, 0, 0, 0, 0, time.UTC), false, time.Date(2017, 8, 30, 7, 36, 0, 0, time.UTC)},
		{"London", 51.5074, -0.1278, time.Date(2024, 6, 21, 0, 0, 0, 0, time.UTC), true, time.Date(2024, 6, 21, 3, 43, 0, 0, time.UTC)},
		{"London", 51.5074, -0.1278, time.Date(2024, 6, 21, 0, 0, 0, 0, time.UTC), false, time.Date(2024, 6, 21, 20, 21, 0, 0, time.UTC)},
	} {
		y, m, d := tc.day.Date()
		got, ok := sunEvent(y, m, d, tc.lat, tc.lon, tc.rise)
		require.True(t, ok, tc.name)
		assert.LessOrEqual(t, math.Abs(got.Sub(tc.want).Seconds()), 60.0, "%s %v rise=%v: got %v", tc.name, tc.day, tc.rise, got)
	}
	// Tromsø: midnight sun at midsummer, polar night at midwinter.
	for _, m := range []time.Month{6, 12} {
		for _, rise := range []bool{true, false} {
			_, ok := sunEvent(2024, m, 21, 69.6492, 18.9553, rise)
			assert.False(t, ok, "Tromsø month %d", m)
		}
	}
}

func TestSunTimespecNext(t *testing.T) {
	rome := place{loc: mustZone(t, "Europe/Rome"), lat: 41.9028, lon: 12.4964, coords: true}
	from := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC) // a Friday
	sunsetFri := time.Date(2025, 3, 14, 17, 15, 30, 0, time.UTC)
	for _, tc := range []struct {
		spec string
		want time.Time
	}{
		{"@sunset", sunsetFri},
		{"@sunset-1h30m", sunsetFri.Add(-90 * time.Minute)},
		{"@sunset-3h", time.Date(2025, 3, 15, 14, 16, 38, 0, time.UTC)}, // today's is past: tomorrow's
		{"@sunset * * MON", time.Date(2025, 3, 17, 17, 18, 54, 0, time.UTC)},
		{"@sunrise+12h", time.Date(2025, 3, 14, 17, 23, 25, 0, time.UTC)},
	} {
		ts, err := parseTimespec(tc.spec)
		require.NoError(t, err)
		got, ok := ts.next(from, rome)
		require.True(t, ok, tc.spec)
		assert.LessOrEqual(t, math.Abs(got.Sub(tc.want).Seconds()), 60.0, "%s: got %v, want about %v", tc.spec, got, tc.want)
	}
	ts, _ := parseTimespec("@sunrise")
	_, ok := ts.next(from, place{loc: time.UTC})
	assert.False(t, ok, "no coordinates: never")
	_, ok = ts.next(from, place{loc: time.UTC, lat: 89, lon: 0, coords: true})
	assert.True(t, ok, "the polar night ends within the year")
}

func FuzzParseTimespec(f *testing.F) {
	for _, s := range []string{"0 0 22 * * FRI", "*/1 * * * * *", "@sunset-1h30m 1 * *", "@sunrise+1.5h", "5-50/5 0 0 ? JAN-DEC 0-7",
		"0 0 0 31 2 *", "@sunrise+00h00m * * MON,TUE"} {
		f.Add(s)
	}
	from := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	p := place{loc: time.UTC, lat: 45, lon: 7, coords: true}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseTimespec(s)
		if err != nil {
			return
		}
		next, ok := ts.next(from, p)
		if ok && !next.After(from) {
			t.Fatalf("%q: next %v is not after %v", s, next, from)
		}
	})
}
