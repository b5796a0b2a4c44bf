package device_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
)

// decimalKeys returns the keys of the dump's em:0 status whose number is
// written with a decimal point.
func decimalKeys(t *testing.T, dump, key string) map[string]bool {
	raw, err := os.ReadFile(filepath.Join("profile", "dumps", dump+".json"))
	require.NoError(t, err)
	var top struct {
		Status map[string]json.RawMessage `json:"Shelly.GetStatus"`
	}
	require.NoError(t, json.Unmarshal(raw, &top))
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(\w+)":\s*(-?\d+\.\d+)`).FindAllStringSubmatch(string(top.Status[key]), -1) {
		out[m[1]] = true
	}
	require.NotEmpty(t, out)
	return out
}

// Protocol section 16.2: every number a model's dump holds with a decimal
// point is printed with one, readings that drift included, in answers and
// in deltas (a Marstek battery crashes on 244 where a meter prints 244.0).
func TestNumbersKeepTheirDecimalPoint(t *testing.T) {
	want := decimalKeys(t, "pro3em-gen2", "em:0")
	_, c, _ := connectProfile(t, "pro3em-gen2", device.Options{Telemetry: 20 * time.Millisecond})
	check := func(what string, raw json.RawMessage) {
		t.Helper()
		for _, m := range regexp.MustCompile(`"(\w+)":(-?[\d.]+)`).FindAllStringSubmatch(string(raw), -1) {
			if want[m[1]] {
				assert.Regexp(t, `\.`, m[2], "%s: %s printed as %s", what, m[1], m[2])
			}
		}
	}
	for range 5 {
		delta := c.ExpectStatusT(t)
		if em, ok := delta.Changes["em:0"]; ok {
			check("delta", em)
		}
		var raw json.RawMessage
		c.CallT(t, "EM.GetStatus", map[string]any{"id": 0}, &raw)
		check("EM.GetStatus", raw)
		assert.GreaterOrEqual(t, len(raw), 250, "the whole em:0 object")
	}
}

// With telemetry a Pro 3EM stays a plausible meter: its totals are the sums
// of its phases, no phase draws more active than apparent power, and its
// energy counters grow while it draws power.
func TestTelemetryMeterStaysConsistent(t *testing.T) {
	clock := newFakeClock()
	_, c, _ := connectProfile(t, "pro3em-gen2", device.Options{Telemetry: 20 * time.Millisecond, Now: clock.Now})
	var before map[string]float64
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &before)
	for range 3 {
		c.ExpectStatusT(t)
	}
	clock.Advance(time.Hour)
	c.ExpectStatusT(t)
	var emRaw map[string]any
	c.CallT(t, "EM.GetStatus", map[string]any{"id": 0}, &emRaw)
	em := map[string]float64{}
	for k, v := range emRaw {
		if f, ok := v.(float64); ok {
			em[k] = f
		}
	}
	sum := 0.0
	for _, ph := range []string{"a_", "b_", "c_"} {
		sum += em[ph+"act_power"]
		assert.LessOrEqual(t, math.Abs(em[ph+"act_power"]), em[ph+"aprt_power"]+1e-9, ph)
	}
	assert.InDelta(t, sum, em["total_act_power"], 0.01)
	var after map[string]float64
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &after)
	assert.Greater(t, after["total_act"], before["total_act"]+1000, "an hour at about 2.4 kW")
	assert.InDelta(t, after["a_total_act_energy"]+after["b_total_act_energy"]+after["c_total_act_energy"], after["total_act"], 0.05)
}
