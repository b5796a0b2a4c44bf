package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// referenceDecode is the straightforward decoder Decode replaced: the whole
// frame into a map with encoding/json. FuzzDecodeMatchesReference holds the
// hand-written scanner to it.
func referenceDecode(data []byte) (Request, error) {
	data = bytes.Trim(data, " \t\n\r")
	if len(data) == 0 || data[0] != '{' {
		if len(data) > 0 && !json.Valid(data) {
			return Request{}, ErrMalformed
		}
		return Request{}, ErrNotObject
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Request{}, ErrMalformed
	}
	var r Request
	if id, ok := fields["id"]; ok {
		switch c := id[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
			r.ID = id
		default:
			return Request{}, ErrBadID
		}
	}
	method := fields["method"]
	if len(method) == 0 || isNull(method) {
		return Request{}, ErrNotRequest
	}
	if method[0] != '"' || json.Unmarshal(method, &r.Method) != nil || r.Method == "" {
		bad := Request{ID: r.ID}
		if src := fields["src"]; len(src) > 0 && src[0] == '"' {
			_ = json.Unmarshal(src, &bad.Src)
		}
		return bad, ErrBadMethod
	}
	if src := fields["src"]; len(src) > 0 && !isNull(src) {
		if src[0] != '"' || json.Unmarshal(src, &r.Src) != nil {
			return Request{}, ErrBadSrc
		}
	}
	if p := fields["params"]; len(p) > 0 && !isNull(p) {
		r.Params = p
	}
	return r, nil
}

func FuzzDecodeMatchesReference(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"src":"a","method":"Ws.GetStatus","params":{"x":[1,{"y":"}"}]}}`,
		`{"id":"a\"b","method":"m","id":2}`,
		`{"\u0069d":7,"method":"m"}`,
		` { "method" : "m" , "params" : null } `,
		`{"method":"m","src":"\u00e9\ud83d\ude00"}`,
		`[1]`, `{}`, ``, `{"method":1}`, `{"id":true,"method":"m"}`,
		`{"id":"x","src":"\u00e9","method":5}`, `{"id":1,"src":2,"method":""}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := Decode(data)
		want, wantErr := referenceDecode(data)
		if !errors.Is(gotErr, wantErr) && gotErr != wantErr {
			t.Fatalf("Decode(%q) error %v, reference %v", data, gotErr, wantErr)
		}
		if errors.Is(gotErr, ErrBadMethod) {
			// What the -103 answer is built from.
			if !bytes.Equal(got.ID, want.ID) || got.Src != want.Src || got.Method != "" || got.Params != nil {
				t.Fatalf("Decode(%q) = %+v with ErrBadMethod, reference %+v", data, got, want)
			}
			return
		}
		if gotErr != nil {
			return
		}
		if !bytes.Equal(got.ID, want.ID) || got.Src != want.Src || got.Method != want.Method || !bytes.Equal(got.Params, want.Params) {
			t.Fatalf("Decode(%q) = %+v, reference %+v", data, got, want)
		}
	})
}
