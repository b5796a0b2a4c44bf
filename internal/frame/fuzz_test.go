package frame_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/shellyws/shellyws/internal/frame"
)

// FuzzDecode feeds arbitrary bytes to Decode, as a hostile or buggy server
// could. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":1,"method":"a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := frame.Decode(data)
		if errors.Is(err, frame.ErrBadMethod) {
			// Answered -103 with the id: that answer must be well formed.
			out := frame.AppendError(nil, req.ID, "dev", req.Src, -103, "bad method")
			if req.ID != nil && !json.Valid(out) {
				t.Fatalf("-103 frame %q is not valid JSON (request %q)", out, data)
			}
			if req.Method != "" || req.Params != nil || req.Auth != nil {
				t.Fatalf("ErrBadMethod of %q kept more than id and src: %+v", data, req)
			}
			return
		}
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted invalid JSON %q", data)
		}
		if req.Method == "" {
			t.Fatalf("Decode accepted %q without a method", data)
		}

		// An independent reading of the frame: exact keys, as JSON defines them.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatalf("Decode accepted %q, which is not an object: %v", data, err)
		}
		if !bytes.Equal(req.ID, fields["id"]) {
			t.Fatalf("ID %q, but the frame's id is %q (frame %q)", req.ID, fields["id"], data)
		}

		// Whatever was accepted must yield a well-formed answer.
		out := frame.AppendResult(nil, req.ID, "dev", req.Src, nil)
		if req.ID == nil {
			return // never answered
		}
		if !json.Valid(out) {
			t.Fatalf("result frame %q is not valid JSON (request %q)", out, data)
		}
		var reply map[string]json.RawMessage
		if err := json.Unmarshal(out, &reply); err != nil {
			t.Fatalf("result frame %q: %v", out, err)
		}
		if !bytes.Equal(reply["id"], fields["id"]) {
			t.Fatalf("reply id %q, request id %q", reply["id"], fields["id"])
		}
		if req.Src != "" {
			var dst string
			if err := json.Unmarshal(reply["dst"], &dst); err != nil || dst != req.Src {
				t.Fatalf("reply dst %q (%v), request src %q", reply["dst"], err, req.Src)
			}
		} else if _, ok := reply["dst"]; ok {
			t.Fatalf("reply %q has dst for a request without src", out)
		}

		// The 404 answer echoes the method name, which the peer chose.
		out = frame.AppendError(nil, req.ID, "dev", req.Src, 404, "No handler for "+req.Method)
		if !json.Valid(out) {
			t.Fatalf("error frame %q is not valid JSON", out)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Message != "No handler for "+req.Method {
			t.Fatalf("error frame %q does not carry method %q (%v)", out, req.Method, err)
		}
		if !utf8.ValidString(req.Method) || !utf8.ValidString(req.Src) {
			t.Fatalf("method %q or src %q is not valid UTF-8", req.Method, req.Src)
		}
	})
}
