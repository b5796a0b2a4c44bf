package device_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type emData struct {
	Keys []string `json:"keys"`
	Data []struct {
		TS     int64       `json:"ts"`
		Period int         `json:"period"`
		Values [][]float64 `json:"values"`
	} `json:"data"`
	NextTS *int64 `json:"next_record_ts"`
}

type emRecords struct {
	Blocks []struct {
		TS      int64 `json:"ts"`
		Period  int   `json:"period"`
		Records int   `json:"records"`
	} `json:"data_blocks"`
}

// A Pro 3EM answers its stored minute records as Fleet Manager's energy
// sync reads them: GetRecords names one block since boot, GetData pages
// through it by next_record_ts, and the records' energies add up to what
// the counters grew by.
func TestEMDataRecordsPageFromBoot(t *testing.T) {
	clock := newFakeClock()
	boot := clock.Now().Unix()
	first := (boot + 59) / 60 * 60
	_, c, _ := connectProfile(t, "pro3em-gen2", device.Options{Telemetry: 20 * time.Millisecond, Now: clock.Now})

	var methods struct{ Methods []string }
	c.CallT(t, "Shelly.ListMethods", nil, &methods)
	for _, m := range []string{"EMData.GetRecords", "EMData.GetData", "EMData.DeleteAllData"} {
		assert.Contains(t, methods.Methods, m)
	}
	var before map[string]float64
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &before)
	clock.Advance(3 * time.Hour)
	c.ExpectStatusT(t)
	now := clock.Now().Unix()
	last := now/60*60 - 60
	want := int((last-first)/60 + 1)

	var recs emRecords
	c.CallT(t, "EMData.GetRecords", map[string]any{"id": 0}, &recs)
	require.Len(t, recs.Blocks, 1)
	assert.Equal(t, first, recs.Blocks[0].TS)
	assert.Equal(t, 60, recs.Blocks[0].Period)
	assert.Equal(t, want, recs.Blocks[0].Records)
	c.CallT(t, "EMData.GetRecords", map[string]any{"id": 0, "ts": first + 600}, &recs)
	require.Len(t, recs.Blocks, 1)
	assert.Equal(t, want-10, recs.Blocks[0].Records, "from ts on")

	var got [][]float64
	var keys []string
	cursor, pages := int64(0), 0
	for {
		var page emData
		c.CallT(t, "emdata.getdata", map[string]any{"id": 0, "ts": cursor}, &page)
		require.NotNil(t, page.NextTS)
		if len(page.Data) == 0 {
			assert.Equal(t, last+60, *page.NextTS, "the next record to come")
			break
		}
		keys = page.Keys
		require.Len(t, page.Data, 1)
		b := page.Data[0]
		assert.Equal(t, 60, b.Period)
		assert.Equal(t, first+int64(len(got))*60, b.TS, "pages are contiguous")
		assert.LessOrEqual(t, len(b.Values), 60, "a page is bounded")
		assert.Equal(t, b.TS+int64(len(b.Values))*60, *page.NextTS)
		got = append(got, b.Values...)
		cursor = *page.NextTS
		pages++
		require.Less(t, pages, 10)
	}
	assert.Len(t, got, want)
	assert.Equal(t, (want+59)/60, pages)
	assert.Equal(t, 179, want)
	require.Len(t, keys, 51)
	assert.Equal(t, "a_total_act_energy", keys[0])
	idx := map[string]int{}
	for i, k := range keys {
		idx[k] = i
	}
	for _, k := range []string{"a_total_act_ret_energy", "b_min_voltage", "c_max_voltage", "a_min_current", "a_max_current", "n_avg_current"} {
		assert.Contains(t, idx, k)
	}
	var sum float64
	for _, v := range got {
		require.Len(t, v, 51)
		sum += v[idx["a_total_act_energy"]]
		assert.LessOrEqual(t, v[idx["a_min_voltage"]], v[idx["a_avg_voltage"]])
		assert.LessOrEqual(t, v[idx["a_avg_voltage"]], v[idx["a_max_voltage"]])
		assert.InDelta(t, 227.0, v[idx["a_avg_voltage"]], 0.01)
	}
	var after map[string]float64
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &after)
	grew := after["a_total_act_energy"] - before["a_total_act_energy"]
	assert.InDelta(t, grew, sum, 2166.2/60*2, "the records add up to what the counter grew by (%v vs %v)", sum, grew)

	// end_ts and add_keys.
	var part emData
	c.CallT(t, "EMData.GetData", map[string]any{"id": 0, "ts": first, "end_ts": first + 4*60, "add_keys": false}, &part)
	assert.Nil(t, part.Keys)
	require.Len(t, part.Data, 1)
	assert.Len(t, part.Data[0].Values, 5)
	assert.Equal(t, first+5*60, *part.NextTS)
}

// Bad parameters are -103 naming the parameter; an id the device lacks is
// 404; a model without emdata has no EMData methods.
func TestEMDataBadParams(t *testing.T) {
	_, c, _ := connectProfile(t, "pro3em-gen2", device.Options{})
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"EMData.GetData", map[string]any{"id": 0}, shellyws.CodeInvalidArgument, "'ts'"},
		{"EMData.GetData", map[string]any{"id": 0, "ts": -1}, shellyws.CodeInvalidArgument, "'ts'"},
		{"EMData.GetData", map[string]any{"id": 0, "ts": 1.5}, shellyws.CodeInvalidArgument, "'ts'"},
		{"EMData.GetData", map[string]any{"id": 0, "ts": 100, "end_ts": 50}, shellyws.CodeInvalidArgument, "'end_ts'"},
		{"EMData.GetData", map[string]any{"id": 0, "ts": "x"}, shellyws.CodeInvalidArgument, ""},
		{"EMData.GetData", map[string]any{"ts": 0}, shellyws.CodeInvalidArgument, "'id'"},
		{"EMData.GetRecords", map[string]any{"id": 0, "ts": -5}, shellyws.CodeInvalidArgument, "'ts'"},
		{"EMData.GetData", map[string]any{"id": 7, "ts": 0}, shellyws.CodeNotFound, "id"},
		{"EMData.GetRecords", map[string]any{"id": 1}, shellyws.CodeNotFound, "id"},
		{"EMData.DeleteAllData", map[string]any{"id": 3}, shellyws.CodeNotFound, "id"},
		{"EM1Data.GetData", map[string]any{"id": 0, "ts": 0}, shellyws.CodeNoHandler, ""},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v: %v", tc.method, tc.params, e)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}

	_, _, plain, _ := connect(t, withModel(device.Options{}))
	e := rpcError(t, plain, "EMData.GetData", map[string]any{"id": 0, "ts": 0})
	assert.Equal(t, shellyws.CodeNoHandler, e.Code)
	assert.Equal(t, 404, e.Code)
}

// DeleteAllData drops the records and nullifies the counters; records
// start again at the next whole minute.
func TestEMDataDeleteAllData(t *testing.T) {
	clock := newFakeClock()
	_, c, _ := connectProfile(t, "pro3em-gen2", device.Options{Telemetry: 20 * time.Millisecond, Now: clock.Now})
	clock.Advance(time.Hour)
	var recs emRecords
	c.CallT(t, "EMData.GetRecords", map[string]any{"id": 0}, &recs)
	require.Len(t, recs.Blocks, 1)

	var res json.RawMessage
	c.CallT(t, "EMData.DeleteAllData", map[string]any{"id": 0}, &res)
	assert.JSONEq(t, "null", string(res))
	c.CallT(t, "EMData.GetRecords", map[string]any{"id": 0}, &recs)
	assert.Empty(t, recs.Blocks)
	var st map[string]float64
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &st)
	assert.Zero(t, st["total_act"])
	assert.Zero(t, st["a_total_act_energy"])

	clock.Advance(10 * time.Minute)
	c.ExpectStatusT(t)
	c.CallT(t, "EMData.GetRecords", map[string]any{"id": 0}, &recs)
	require.Len(t, recs.Blocks, 1)
	assert.Equal(t, 9, recs.Blocks[0].Records, "whole minutes since the delete")
	c.CallT(t, "EMData.GetStatus", map[string]any{"id": 0}, &st)
	assert.InDelta(t, 2413.8/6, st["total_act"], 5, "counting on from zero")
}

// A Pro 3EM in the monophase profile keeps per-channel EM1Data records
// with unprefixed keys.
func TestEM1DataMonophase(t *testing.T) {
	clock := newFakeClock()
	_, c, _ := connectProfile(t, "pro3em-gen2-monophase", device.Options{Telemetry: 20 * time.Millisecond, Now: clock.Now})
	clock.Advance(30 * time.Minute)
	var page emData
	c.CallT(t, "EM1Data.GetData", map[string]any{"id": 2, "ts": 0}, &page)
	require.Len(t, page.Keys, 16)
	assert.Equal(t, "total_act_energy", page.Keys[0])
	require.Len(t, page.Data, 1)
	assert.Len(t, page.Data[0].Values, 29)
	assert.InDelta(t, 6.5/60, page.Data[0].Values[0][0], 0.001, "a minute at 6.5 W")
	e := rpcError(t, c, "EMData.GetData", map[string]any{"id": 0, "ts": 0})
	assert.Equal(t, shellyws.CodeNoHandler, e.Code)
}
