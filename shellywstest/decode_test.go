package shellywstest_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/shellywstest"
)

func TestDecode(t *testing.T) {
	raw := json.RawMessage(`{"id":0,"output":true,"apower":12.5,"aenergy":{"total":3.25}}`)
	m, err := shellywstest.Decode[map[string]any](raw)
	require.NoError(t, err)
	assert.Equal(t, true, m["output"])
	assert.Equal(t, 12.5, m["apower"])

	type switchStatus struct {
		ID      int     `json:"id"`
		Output  bool    `json:"output"`
		APower  float64 `json:"apower"`
		AEnergy struct {
			Total float64 `json:"total"`
		} `json:"aenergy"`
	}
	sw, err := shellywstest.Decode[switchStatus](raw)
	require.NoError(t, err)
	assert.True(t, sw.Output)
	assert.Equal(t, 3.25, sw.AEnergy.Total)

	ptr, err := shellywstest.Decode[*switchStatus](json.RawMessage(`null`))
	require.NoError(t, err)
	assert.Nil(t, ptr, "null is the zero value")

	_, err = shellywstest.Decode[map[string]any](nil)
	assert.ErrorContains(t, err, "the member is absent")
	_, err = shellywstest.Decode[int](raw)
	assert.ErrorContains(t, err, "into int")
	_, err = shellywstest.Decode[[]any](json.RawMessage(`{"a":`))
	assert.ErrorContains(t, err, "decoding")
}

// fatalRecorder is a testing.TB whose Fatal only records.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestDecodeT(t *testing.T) {
	got := shellywstest.DecodeT[map[string]int](t, json.RawMessage(`{"cfg_rev":36}`))
	assert.Equal(t, 36, got["cfg_rev"])

	rec := &fatalRecorder{TB: t}
	shellywstest.DecodeT[map[string]int](rec, json.RawMessage(`{"cfg_rev":"x"}`))
	assert.Contains(t, rec.fatal, "cfg_rev", "the test fails, naming what did not decode")
	rec = &fatalRecorder{TB: t}
	shellywstest.DecodeT[bool](rec, nil)
	assert.Contains(t, rec.fatal, "absent")
}
