package frame_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shellyws/shellyws/internal/frame"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDecodeID(t *testing.T) {
	// Ids are echoed byte for byte, so whatever number or string came in
	// must be kept as the exact raw bytes, not re-encoded.
	tests := []struct {
		name string
		id   string
	}{
		{"zero", `0`},
		{"small", `17`},
		{"string", `"abc"`},
		{"empty string", `""`},
		{"string with escapes", `"a\"b\u00e9"`},
		{"above uint32", `4294967297`},
		{"max uint64", `18446744073709551615`},
		{"above uint64", `123456789012345678901234567890`},
		{"negative", `-1`},
		{"fraction", `1.5`},
		{"exponent", `1e3`},
		{"negative zero", `-0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := frame.Decode([]byte(`{"id":` + tt.id + `,"src":"x","method":"Ws.GetStatus"}`))
			require.NoError(t, err)
			assert.Equal(t, tt.id, string(req.ID))
		})
	}
}

func TestDecodeIDWhitespaceNotKept(t *testing.T) {
	req, err := frame.Decode([]byte("  {\"id\" :\t 42 \n, \"method\":\"a\"}  \n"))
	require.NoError(t, err)
	assert.Equal(t, "42", string(req.ID))
}

func TestDecodeFields(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want frame.Request
	}{
		{
			name: "protocol example with jsonrpc",
			in:   `{"jsonrpc":"2.0","id":17,"src":"FLEET_MANAGER","method":"Shelly.GetStatus","params":{}}`,
			want: frame.Request{ID: json.RawMessage(`17`), Src: "FLEET_MANAGER", Method: "Shelly.GetStatus", Params: json.RawMessage(`{}`)},
		},
		{
			name: "protocol example with nested params",
			in:   `{"id":1,"src":"user_1","method":"Ws.SetConfig","params":{"config":{"ssl_ca":"*"}}}`,
			want: frame.Request{ID: json.RawMessage(`1`), Src: "user_1", Method: "Ws.SetConfig", Params: json.RawMessage(`{"config":{"ssl_ca":"*"}}`)},
		},
		{
			name: "no src and no params",
			in:   `{"id":999,"method":"Shelly.Reboot"}`,
			want: frame.Request{ID: json.RawMessage(`999`), Method: "Shelly.Reboot"},
		},
		{
			name: "no id means no reply",
			in:   `{"src":"s","method":"Shelly.Reboot","params":{"delay_ms":3500}}`,
			want: frame.Request{Src: "s", Method: "Shelly.Reboot", Params: json.RawMessage(`{"delay_ms":3500}`)},
		},
		{
			name: "params null",
			in:   `{"id":2,"method":"Ws.GetConfig","params":null}`,
			want: frame.Request{ID: json.RawMessage(`2`), Method: "Ws.GetConfig"},
		},
		{
			// A null src is treated like an absent one: still answered, no dst.
			name: "src null",
			in:   `{"id":3,"src":null,"method":"Ws.GetConfig"}`,
			want: frame.Request{ID: json.RawMessage(`3`), Method: "Ws.GetConfig"},
		},
		{
			name: "dst ignored",
			in:   `{"id":4,"src":"a","dst":"shellyplus1pm-c049ef8cf4e0","method":"Ws.GetStatus"}`,
			want: frame.Request{ID: json.RawMessage(`4`), Src: "a", Method: "Ws.GetStatus"},
		},
		{
			name: "jsonrpc of any type ignored",
			in:   `{"jsonrpc":{"v":[1]},"id":5,"method":"Ws.GetStatus"}`,
			want: frame.Request{ID: json.RawMessage(`5`), Method: "Ws.GetStatus"},
		},
		{
			name: "unknown keys ignored",
			in:   `{"id":6,"method":"Ws.GetStatus","extra":[1,2,{"x":null}]}`,
			want: frame.Request{ID: json.RawMessage(`6`), Method: "Ws.GetStatus"},
		},
		{
			name: "escaped method and src are unescaped",
			in:   `{"id":7,"src":"us\u0065r\"1","method":"Ws.Get\u0053tatus"}`,
			want: frame.Request{ID: json.RawMessage(`7`), Src: `user"1`, Method: "Ws.GetStatus"},
		},
		{
			name: "method case kept as sent",
			in:   `{"id":8,"method":"ws.getstatus"}`,
			want: frame.Request{ID: json.RawMessage(`8`), Method: "ws.getstatus"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := frame.Decode([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"id object", `{"id":{},"method":"a"}`, frame.ErrBadID},
		{"id array", `{"id":[1],"method":"a"}`, frame.ErrBadID},
		{"id true", `{"id":true,"method":"a"}`, frame.ErrBadID},
		{"id false", `{"id":false,"method":"a"}`, frame.ErrBadID},
		{"id null", `{"id":null,"method":"a"}`, frame.ErrBadID},

		{"method missing", `{"id":1,"src":"a"}`, frame.ErrNotRequest},
		{"method null", `{"id":1,"method":null}`, frame.ErrNotRequest},
		{"method number", `{"id":1,"method":5}`, frame.ErrBadMethod},
		{"method bool", `{"id":1,"method":true}`, frame.ErrBadMethod},
		{"method object", `{"id":1,"method":{"a":"b"}}`, frame.ErrBadMethod},
		{"method array", `{"id":1,"method":["a"]}`, frame.ErrBadMethod},
		{"method empty", `{"id":1,"method":""}`, frame.ErrBadMethod},

		{"src number", `{"id":1,"src":1,"method":"a"}`, frame.ErrBadSrc},
		{"src bool", `{"id":1,"src":false,"method":"a"}`, frame.ErrBadSrc},
		{"src object", `{"id":1,"src":{},"method":"a"}`, frame.ErrBadSrc},
		{"src array", `{"id":1,"src":["a"],"method":"a"}`, frame.ErrBadSrc},

		{"empty input", ``, frame.ErrNotObject},
		{"only whitespace", " \n\t", frame.ErrNotObject},
		{"array", `[{"id":1,"method":"a"}]`, frame.ErrNotObject},
		{"number", `17`, frame.ErrNotObject},
		{"string", `"Shelly.GetStatus"`, frame.ErrNotObject},
		{"null", `null`, frame.ErrNotObject},
		{"true", `true`, frame.ErrNotObject},

		{"not JSON", `hello`, frame.ErrMalformed},
		{"truncated object", `{"id":1,"method":"a"`, frame.ErrMalformed},
		{"truncated string", `{"id":1,"method":"a`, frame.ErrMalformed},
		{"truncated array", `[1,`, frame.ErrMalformed},
		{"lone brace", `{`, frame.ErrMalformed},
		{"trailing garbage", `{"id":1,"method":"a"}x`, frame.ErrMalformed},
		{"two objects", `{"id":1,"method":"a"}{"id":2,"method":"b"}`, frame.ErrMalformed},
		{"single quotes", `{'id':1,'method':'a'}`, frame.ErrMalformed},
		{"control char in string", "{\"id\":1,\"method\":\"a\x01\"}", frame.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				req frame.Request
				err error
			)
			require.NotPanics(t, func() { req, err = frame.Decode([]byte(tt.in)) })
			require.ErrorIs(t, err, tt.want)
			if tt.want == frame.ErrBadMethod {
				return // it keeps the id to answer with; see TestDecodeBadMethodKeepsTheID
			}
			assert.Zero(t, req, "a failed decode returns no partial request")
		})
	}
}

// A frame with an id whose method is not a non-empty string asked for an
// answer: ErrBadMethod comes with the id, and the src when it is a string,
// so the device can answer -103; nothing else of the frame.
func TestDecodeBadMethodKeepsTheID(t *testing.T) {
	for in, want := range map[string]frame.Request{
		`{"id":1,"src":"a","method":5,"params":{"x":1}}`: {ID: json.RawMessage(`1`), Src: "a"},
		`{"id":"x","method":true}`:                       {ID: json.RawMessage(`"x"`)},
		`{"id":0,"src":7,"method":["a"]}`:                {ID: json.RawMessage(`0`)},
		`{"id":2,"src":null,"method":""}`:                {ID: json.RawMessage(`2`)},
		`{"src":"a","method":{}}`:                        {Src: "a"},
	} {
		got, err := frame.Decode([]byte(in))
		require.ErrorIs(t, err, frame.ErrBadMethod, in)
		assert.Equal(t, want, got, in)
	}
}

func TestDecodeKeysAreCaseSensitive(t *testing.T) {
	// JSON keys are case-sensitive; the firmware's parser does not fold them.
	// An "ID" key must neither become the id nor override "id", or the
	// reply would echo a value the server did not use as id.
	req, err := frame.Decode([]byte(`{"id":1,"ID":"other","Id":2,"method":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, "1", string(req.ID))

	req, err = frame.Decode([]byte(`{"ID":1,"method":"a"}`))
	require.NoError(t, err)
	assert.Nil(t, req.ID, "a request without an exact \"id\" key is never answered")

	_, err = frame.Decode([]byte(`{"id":1,"Method":"Shelly.Reboot"}`))
	require.ErrorIs(t, err, frame.ErrNotRequest)

	req, err = frame.Decode([]byte(`{"id":1,"SRC":"x","method":"a","Params":{}}`))
	require.NoError(t, err)
	assert.Empty(t, req.Src)
	assert.Nil(t, req.Params)
}

const dev = "shellyplus1pm-c049ef8cf4e0"

func TestAppendResult(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		dst    string
		result json.RawMessage
		want   string
	}{
		{
			name: "protocol example", id: `17`, dst: "FLEET_MANAGER", result: json.RawMessage(`{"connected":true}`),
			want: `{"id":17,"src":"shellyplus1pm-c049ef8cf4e0","dst":"FLEET_MANAGER","result":{"connected":true}}`,
		},
		{
			name: "no dst", id: `999`, result: json.RawMessage(`{"restart_required":true}`),
			want: `{"id":999,"src":"shellyplus1pm-c049ef8cf4e0","result":{"restart_required":true}}`,
		},
		{
			name: "nil result is null", id: `"abc"`, dst: "user_1",
			want: `{"id":"abc","src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","result":null}`,
		},
		{
			name: "empty result is null", id: `0`, result: json.RawMessage{},
			want: `{"id":0,"src":"shellyplus1pm-c049ef8cf4e0","result":null}`,
		},
		{
			name: "large id verbatim", id: `18446744073709551615`, result: json.RawMessage(`[]`),
			want: `{"id":18446744073709551615,"src":"shellyplus1pm-c049ef8cf4e0","result":[]}`,
		},
		{
			name: "dst escaped", id: `1.5`, dst: "a\"b\\c", result: json.RawMessage(`1`),
			want: `{"id":1.5,"src":"shellyplus1pm-c049ef8cf4e0","dst":"a\"b\\c","result":1}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := frame.AppendResult(nil, json.RawMessage(tt.id), dev, tt.dst, tt.result)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		dst     string
		code    int
		message string
		want    string
	}{
		{
			name: "protocol example", id: `18`, dst: "user_1", code: 404, message: "No handler for Nope.Nothing",
			want: `{"id":18,"src":"shellyplus1pm-c049ef8cf4e0","dst":"user_1","error":{"code":404,"message":"No handler for Nope.Nothing"}}`,
		},
		{
			name: "negative code no dst", id: `"x"`, code: -103, message: "Missing required 'id'",
			want: `{"id":"x","src":"shellyplus1pm-c049ef8cf4e0","error":{"code":-103,"message":"Missing required 'id'"}}`,
		},
		{
			name: "zero code empty message", id: `0`, code: 0, message: "",
			want: `{"id":0,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":0,"message":""}}`,
		},
		{
			name: "escaped message", id: `1`, code: 500, message: "bad \"x\"\n",
			want: `{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":500,"message":"bad \"x\"\n"}}`,
		},
		{
			name: "max int code", id: `1`, code: math.MaxInt, message: "m",
			want: `{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":9223372036854775807,"message":"m"}}`,
		},
		{
			// -MinInt overflows; the encoder must not produce garbage digits.
			name: "min int code", id: `1`, code: math.MinInt, message: "m",
			want: `{"id":1,"src":"shellyplus1pm-c049ef8cf4e0","error":{"code":-9223372036854775808,"message":"m"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := frame.AppendError(nil, json.RawMessage(tt.id), dev, tt.dst, tt.code, tt.message)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

func TestAppendNotification(t *testing.T) {
	tests := []struct {
		name   string
		dst    string
		method string
		params json.RawMessage
		want   string
	}{
		{
			name: "protocol example", dst: "ws", method: "NotifyStatus",
			params: json.RawMessage(`{"ts":1631186545.04,"switch:0":{"id":0,"output":true,"source":"WS_in"}}`),
			want:   `{"src":"shellyplus1pm-c049ef8cf4e0","dst":"ws","method":"NotifyStatus","params":{"ts":1631186545.04,"switch:0":{"id":0,"output":true,"source":"WS_in"}}}`,
		},
		{
			name: "nil params is an empty object", dst: "ws", method: "NotifyEvent",
			want: `{"src":"shellyplus1pm-c049ef8cf4e0","dst":"ws","method":"NotifyEvent","params":{}}`,
		},
		{
			name: "no dst", method: "NotifyFullStatus", params: json.RawMessage(`{"ts":1}`),
			want: `{"src":"shellyplus1pm-c049ef8cf4e0","method":"NotifyFullStatus","params":{"ts":1}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := frame.AppendNotification(nil, dev, tt.dst, tt.method, tt.params)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	// The Append functions reuse a caller's buffer; they must append, not overwrite.
	buf := []byte("prefix:")
	buf = frame.AppendResult(buf, json.RawMessage(`1`), "d", "", nil)
	buf = frame.AppendError(buf, json.RawMessage(`2`), "d", "", 1, "e")
	buf = frame.AppendNotification(buf, "d", "ws", "N", nil)
	assert.Equal(t, `prefix:{"id":1,"src":"d","result":null}`+
		`{"id":2,"src":"d","error":{"code":1,"message":"e"}}`+
		`{"src":"d","dst":"ws","method":"N","params":{}}`, string(buf))
}

// escapeCases are strings whose encoding must match encoding/json's meaning.
var escapeCases = []string{
	"",
	"plain",
	`quote"inside`,
	`back\slash`,
	"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
	"\x7f del",
	"<html>&amp;",
	"héllo wörld",
	"日本語",
	"emoji 😀",
	"line\u2028sep\u2029para",
	"\u2027\u202a neighbours of the separators",
	"bad \xff byte",
	"truncated \xe6\x97",
	"lone continuation \x80",
	"surrogate half \xed\xa0\x80",
	"overlong \xc0\xaf",
	"\xff",
	"mixed \"\\\n\xfe\u2028end",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range escapeCases {
		t.Run(strings.ToValidUTF8(s, "?"), func(t *testing.T) {
			got := frame.AppendString(nil, s)
			require.True(t, json.Valid(got), "invalid JSON %q", got)
			// json.Valid does not check UTF-8; a peer's decoder may.
			require.True(t, utf8.Valid(got), "invalid UTF-8 %q", got)

			want, err := json.Marshal(s)
			require.NoError(t, err)
			var gotS, wantS string
			require.NoError(t, json.Unmarshal(got, &gotS))
			require.NoError(t, json.Unmarshal(want, &wantS))
			assert.Equal(t, wantS, gotS)
			if utf8.ValidString(s) {
				assert.Equal(t, s, gotS, "a valid string round-trips unchanged")
			}
		})
	}
}

func TestAppendStringExact(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `""`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"\x08\x0c", `"\u0008\u000c"`},
		{"<>&", `"<>&"`}, // no HTML escaping
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"é😀", "\"é😀\""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(frame.AppendString(nil, tt.in)), "input %q", tt.in)
	}
}

func TestAppendOutputAlwaysValid(t *testing.T) {
	// Every string the device echoes (src, dst, method, message) may be
	// arbitrary; the frame must stay parseable whatever they hold.
	for _, s := range escapeCases {
		frames := [][]byte{
			frame.AppendResult(nil, json.RawMessage(`1`), s, s, nil),
			frame.AppendError(nil, json.RawMessage(`1`), s, s, -103, s),
			frame.AppendNotification(nil, s, s, s, nil),
		}
		for _, f := range frames {
			require.True(t, json.Valid(f), "invalid JSON %q", f)
			require.True(t, utf8.Valid(f), "invalid UTF-8 %q", f)
		}
	}
}
