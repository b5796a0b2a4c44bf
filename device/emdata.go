package device

import (
	"context"
	"math"
	"strings"

	"github.com/shellyws/shellyws"
)

// The stored records of an energy meter (EMData.* and EM1Data.*): one
// record a minute since the device booted (or since DeleteAllData), derived
// from the meter's readings when asked, so a device holds no history.

const (
	// emPeriod is a record's length in seconds, as the firmware stores them.
	emPeriod = 60
	// emPage is the most records one GetData answer holds; the rest are
	// fetched from next_record_ts.
	emPage = 60
	// emKeep is how many minutes of records the device keeps.
	emKeep = 60 * 24 * 60
)

// emFields are the per-phase record values, in the firmware's order.
var emFields = []string{
	"total_act_energy", "fund_act_energy", "total_act_ret_energy", "fund_act_ret_energy",
	"lag_react_energy", "lead_react_energy", "max_act_power", "min_act_power",
	"max_aprt_power", "min_aprt_power", "max_voltage", "min_voltage", "avg_voltage",
	"max_current", "min_current", "avg_current",
}

// emdataActions are the record methods of emdata and em1data.
func emdataActions() map[string]handler {
	return map[string]handler{"GetRecords": emGetRecords, "GetData": emGetData, "DeleteAllData": emDeleteAllData}
}

// emSpan is a meter's records: first and last record ts (last < first: none).
type emSpan struct {
	key         string
	first, last int64
	phases      []string // "a_", "b_", "c_"; "" for em1
	meterKey    string   // em:N or em1:N
	neutral     bool     // the meter reports n_current
	counting    bool     // the counters grow (telemetry on)
}

// emSpanOf resolves the request's id to its records, of emdata or em1data
// as its method says.
func (d *Device) emSpanOf(req *shellyws.Request) (*emSpan, *readings, error) {
	typ := strings.ToLower(req.Method[:strings.IndexByte(req.Method, '.')])
	key, err := d.keyOf(typ, true, req)
	if err != nil {
		return nil, nil, err
	}
	r, _ := d.partOf(key).(*readings)
	if r == nil {
		return nil, nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id for %s", key)
	}
	n := key[strings.IndexByte(key, ':')+1:]
	s := &emSpan{key: key, phases: []string{"a_", "b_", "c_"}, meterKey: "em:" + n}
	if typ == "em1data" {
		s.phases, s.meterKey = []string{""}, "em1:"+n
	}
	if m := d.p.Status.Object(s.meterKey); m != nil {
		s.neutral = m.Has("n_current")
	}
	d.mu.Lock()
	from := d.bootedAt
	if !r.cleared.IsZero() {
		from = r.cleared
	}
	now := d.now()
	s.counting = d.telemetry > 0
	d.mu.Unlock()
	// A record covers a whole minute from its ts; the current minute is
	// not stored yet.
	s.first = (from.Unix() + emPeriod - 1) / emPeriod * emPeriod
	s.last = now.Unix()/emPeriod*emPeriod - emPeriod
	s.first = max(s.first, s.last-(emKeep-1)*emPeriod)
	return s, r, nil
}

// emTS reads an optional Unix timestamp parameter.
func emTS(name string, v *float64, def int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if *v < 0 || *v > 1e11 || *v != math.Trunc(*v) {
		return 0, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument '%s': must be a Unix timestamp in seconds", name)
	}
	return int64(*v), nil
}

// emGetRecords answers {data_blocks: [{ts, period, records}]}: the
// intervals of stored records from ts on.
func emGetRecords(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		TS *float64 `json:"ts"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	ts, err := emTS("ts", p.TS, 0)
	if err != nil {
		return nil, err
	}
	s, _, err := d.emSpanOf(req)
	if err != nil {
		return nil, err
	}
	type block struct {
		TS      int64 `json:"ts"`
		Period  int   `json:"period"`
		Records int64 `json:"records"`
	}
	blocks := []block{}
	first := max(s.first, ceilPeriod(ts))
	if first <= s.last {
		blocks = append(blocks, block{TS: first, Period: emPeriod, Records: (s.last-first)/emPeriod + 1})
	}
	return map[string]any{"data_blocks": blocks}, nil
}

func ceilPeriod(ts int64) int64 { return (ts + emPeriod - 1) / emPeriod * emPeriod }

// emGetData answers {keys, data: [{ts, period, values}], next_record_ts}:
// the records from ts to end_ts, at most emPage of them.
func emGetData(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		TS      *float64 `json:"ts"`
		EndTS   *float64 `json:"end_ts"`
		AddKeys *bool    `json:"add_keys"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.TS == nil {
		return nil, missingArg("ts")
	}
	ts, err := emTS("ts", p.TS, 0)
	if err != nil {
		return nil, err
	}
	end, err := emTS("end_ts", p.EndTS, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	if end < ts {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'end_ts': must not be before 'ts'")
	}
	s, _, err := d.emSpanOf(req)
	if err != nil {
		return nil, err
	}
	keys := s.keys()
	first := max(s.first, ceilPeriod(ts))
	last := min(s.last, end/emPeriod*emPeriod, first+(emPage-1)*emPeriod)
	type block struct {
		TS     int64       `json:"ts"`
		Period int         `json:"period"`
		Values [][]float64 `json:"values"`
	}
	res := struct {
		Keys   []string `json:"keys,omitempty"`
		Data   []block  `json:"data"`
		NextTS int64    `json:"next_record_ts"`
	}{Data: []block{}, NextTS: first}
	if p.AddKeys == nil || *p.AddKeys {
		res.Keys = keys
	}
	if first <= last {
		meter := d.meterReadings(s.meterKey)
		values := make([][]float64, 0, (last-first)/emPeriod+1)
		for t := first; t <= last; t += emPeriod {
			values = append(values, s.record(meter))
		}
		res.Data = append(res.Data, block{TS: first, Period: emPeriod, Values: values})
		res.NextTS = last + emPeriod
	}
	return res, nil
}

// keys are the names of a record's values.
func (s *emSpan) keys() []string {
	var keys []string
	for _, ph := range s.phases {
		for _, f := range emFields {
			keys = append(keys, ph+f)
		}
	}
	if s.neutral {
		keys = append(keys, "n_max_current", "n_min_current", "n_avg_current")
	}
	return keys
}

// meterReadings are the meter's dump readings the records derive from.
func (d *Device) meterReadings(key string) map[string]float64 {
	out := map[string]float64{}
	m := d.p.Status.Object(key)
	if m == nil {
		return out
	}
	for _, k := range m.Keys {
		if v, ok := m.Number(k); ok {
			out[k] = v
		}
	}
	return out
}

// record is one minute at the meter's readings: energies in Wh for the
// minute (what the counters grow by; none without telemetry, as the
// counters then stay), minimum and maximum ±0.5 % around the reading.
func (s *emSpan) record(m map[string]float64) []float64 {
	var out []float64
	for _, ph := range s.phases {
		power := m[ph+"act_power"]
		var act, ret float64
		if s.counting {
			if power > 0 {
				act = round(power/emPeriod, 3)
			} else {
				ret = round(-power/emPeriod, 3)
			}
		}
		aprt := math.Max(m[ph+"aprt_power"], math.Abs(power))
		v, c := m[ph+"voltage"], m[ph+"current"]
		pHi, pLo := power+math.Abs(power)*0.005, power-math.Abs(power)*0.005
		out = append(out, act, act, ret, ret, 0, 0,
			round(pHi, 1), round(pLo, 1), round(aprt*1.005, 1), round(aprt*0.995, 1),
			round(v*1.005, 1), round(v*0.995, 1), round(v, 1),
			round(c*1.005, 3), round(c*0.995, 3), round(c, 3))
	}
	if s.neutral {
		c := m["n_current"]
		out = append(out, round(c*1.005, 3), round(c*0.995, 3), round(c, 3))
	}
	return out
}

// emDeleteAllData drops the stored records and nullifies the counters;
// records start again at the next whole minute.
func emDeleteAllData(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	_, r, err := d.emSpanOf(req)
	if err != nil {
		return nil, err
	}
	d.notifyMu.Lock()
	d.mu.Lock()
	r.cleared = d.now()
	d.mu.Unlock()
	d.notifyMu.Unlock()
	return nil, nil
}
