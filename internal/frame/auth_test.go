package frame_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/internal/frame"
)

// The "auth" object of an authenticated request is kept raw, and Detach
// copies it with the id and params, so a reused read buffer cannot change
// it.
func TestDecodeAuth(t *testing.T) {
	data := []byte(`{"id":1,"method":"Ws.GetStatus","params":{"a":1},"auth":{"realm":"r","nc":1}}`)
	r, err := frame.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage(`{"realm":"r","nc":1}`), r.Auth)
	d := r.Detach()
	for i := range data {
		data[i] = 'x'
	}
	assert.Equal(t, json.RawMessage(`1`), d.ID)
	assert.Equal(t, json.RawMessage(`{"a":1}`), d.Params)
	assert.Equal(t, json.RawMessage(`{"realm":"r","nc":1}`), d.Auth)
	// Appending to one field must not overwrite the next.
	_ = append(d.Params, '!')
	assert.Equal(t, json.RawMessage(`{"realm":"r","nc":1}`), d.Auth)

	for _, in := range []string{`{"method":"m","auth":null}`, `{"method":"m"}`} {
		r, err := frame.Decode([]byte(in))
		require.NoError(t, err)
		assert.Nil(t, r.Auth, in)
		assert.Nil(t, r.Detach().Auth, in)
	}
	r, err = frame.Decode([]byte(`{"method":"m","\u0061uth":{"x":1}}`))
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage(`{"x":1}`), r.Auth, "an escaped key spelling auth")
}
