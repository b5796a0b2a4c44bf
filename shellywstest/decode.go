package shellywstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// errAbsent is Decode's error for a member that is not there.
var errAbsent = errors.New("shellywstest: nothing to decode: the member is absent")

// Decode decodes a JSON value from the device into a T, so that a test
// reads a notification or a result in one call instead of declaring and
// unmarshalling by hand. raw is any member this package hands out: a
// StatusDelta's Changes["switch:0"], a FullStatus's Status["sys"], an
// Event's Raw, a Frame's Params or Result, a Notification's Params (ts
// included), the whole response frame Conn.CallRaw returns. T is a struct
// with json tags, a map[string]any, a []any, or any type encoding/json
// decodes. A nil raw (an absent member) is an error; JSON null gives the
// zero T.
func Decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if raw == nil {
		return v, errAbsent
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("shellywstest: decoding %s into %T: %w", trim(raw), v, err)
	}
	return v, nil
}

// DecodeT is Decode failing the test on error; call it from the test's
// goroutine.
//
//	sw := shellywstest.DecodeT[map[string]any](t, c.ExpectStatusT(t).Changes["switch:0"])
//	if sw["output"] != true { ... }
func DecodeT[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	v, err := Decode[T](raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
