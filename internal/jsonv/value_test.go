package jsonv_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/internal/jsonv"
)

func TestDecimalKeepsAPoint(t *testing.T) {
	for f, want := range map[float64]string{244: "244.0", 244.5: "244.5", -3: "-3.0", 0: "0.0", 0.001: "0.001", 1e21: "1000000000000000000000.0"} {
		b, err := json.Marshal(jsonv.Decimal(f))
		require.NoError(t, err)
		assert.Equal(t, want, string(b), "%v", f)
	}
	b, _ := json.Marshal(jsonv.Decimal(math.NaN()))
	assert.Equal(t, "null", string(b))
}

// A patched number keeps the form of the literal it replaces: 244.0 where
// the dump had a decimal point, 60 where it had none.
func TestPatchedNumbersKeepTheirForm(t *testing.T) {
	v, err := jsonv.Parse([]byte(`{"a_act_power":227.5,"count":3,"nested":{"V":5.58},"n":null}`))
	require.NoError(t, err)
	obj := v.(*jsonv.Object)
	p := jsonv.Patch{{Key: "a_act_power", Val: 244.0}, {Key: "count", Val: 60.0}, {Key: "nested", Val: jsonv.Patch{{Key: "V", Val: 5.0}}}, {Key: "n", Val: jsonv.Decimal(1)}}
	out, err := jsonv.AppendJSON(nil, obj, "", "", p)
	require.NoError(t, err)
	assert.Equal(t, `{"a_act_power":244.0,"count":60,"nested":{"V":5.0},"n":1.0}`, string(out))

	delta, err := json.Marshal(p.Map(obj))
	require.NoError(t, err)
	assert.JSONEq(t, `{"a_act_power":244.0,"count":60,"nested":{"V":5.0},"n":1.0}`, string(delta))
	assert.Contains(t, string(delta), `"a_act_power":244.0`)
	assert.Contains(t, string(delta), `"V":5.0`)
	assert.Contains(t, string(delta), `"count":60`)

	m, err := json.Marshal(jsonv.Delta(map[string]any{"V": 5.0}, obj.Object("nested")))
	require.NoError(t, err)
	assert.Equal(t, `{"V":5.0}`, string(m))
}
