// Package frame encodes and decodes the JSON frames of the Gen2 RPC protocol
// as a device sees them: requests in, responses and notifications out.
//
// Encoding is done by hand so that keys come out in the order real devices
// use (id, src, dst, result|error) and so that ids are echoed byte for byte.
package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Request is a decoded request frame. ID is nil when the request had no id
// (it must not be answered). Params is nil when absent or null.
type Request struct {
	ID     json.RawMessage
	Src    string
	Method string
	Params json.RawMessage
	// Auth is the raw "auth" object of an authenticated request; nil when
	// absent or null.
	Auth json.RawMessage
}

// Errors returned by Decode. Each means the frame is not executed; all but
// ErrBadMethod mean it is dropped unanswered.
var (
	ErrNotObject = errors.New("frame is not a JSON object")
	ErrBadID     = errors.New("id is neither a number nor a string")
	// ErrBadMethod: method is not a string, or an empty one. The frame is
	// a request all the same, answered -103 when it has an id.
	ErrBadMethod  = errors.New("method is not a non-empty string")
	ErrBadSrc     = errors.New("src is not a string")
	ErrMalformed  = errors.New("frame is not valid JSON")
	ErrNotRequest = errors.New("frame has no method")
)

// Decode parses one request frame. It never panics; any error means the frame
// is malformed and is not executed. With ErrBadMethod the returned Request
// holds the ID (nil if none) and the Src (if a string), so that the caller
// can answer -103; every other error returns a zero Request and the frame
// is dropped without a reply. ID and Params alias data: copy them before
// data is reused.
//
// Only the top level is scanned, by hand, so a request costs two string
// allocations instead of a map of copies. Keys are matched exactly: JSON keys
// are case-sensitive, so "ID" is not "id". Of repeated keys the last wins, as
// with encoding/json.
func Decode(data []byte) (Request, error) {
	// Only JSON's own whitespace: bytes.TrimSpace would also take \v and
	// \f, and so accept frames that are not JSON.
	data = bytes.Trim(data, " \t\n\r")
	if len(data) == 0 {
		return Request{}, ErrNotObject
	}
	if !json.Valid(data) {
		return Request{}, ErrMalformed
	}
	if data[0] != '{' {
		return Request{}, ErrNotObject
	}
	var id, src, method, params, auth []byte
	i := 1
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			break
		}
		keyEnd := skipString(data, i)
		key := data[i:keyEnd]
		i = skipSpace(data, keyEnd)
		i = skipSpace(data, i+1) // ':'
		valEnd := skipValue(data, i)
		val := data[i:valEnd]
		switch {
		case string(key) == `"id"`:
			id = val
		case string(key) == `"src"`:
			src = val
		case string(key) == `"method"`:
			method = val
		case string(key) == `"params"`:
			params = val
		case string(key) == `"auth"`:
			auth = val
		case bytes.IndexByte(key, '\\') >= 0:
			// An escaped key may still spell one of ours.
			var k string
			if json.Unmarshal(key, &k) == nil {
				switch k {
				case "id":
					id = val
				case "src":
					src = val
				case "method":
					method = val
				case "params":
					params = val
				case "auth":
					auth = val
				}
			}
		}
		i = skipSpace(data, valEnd)
		if data[i] == ',' {
			i++
		}
	}
	var r Request
	if len(id) > 0 {
		switch c := id[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
			r.ID = id
		default:
			return Request{}, ErrBadID
		}
	}
	if len(method) == 0 || isNull(method) {
		return Request{}, ErrNotRequest
	}
	var ok bool
	if r.Method, ok = stringValue(method); !ok || r.Method == "" {
		bad := Request{ID: r.ID}
		if len(src) > 0 && !isNull(src) {
			bad.Src, _ = stringValue(src)
		}
		return bad, ErrBadMethod
	}
	if len(src) > 0 && !isNull(src) {
		if r.Src, ok = stringValue(src); !ok {
			return Request{}, ErrBadSrc
		}
	}
	if len(params) > 0 && !isNull(params) {
		r.Params = params
	}
	if len(auth) > 0 && !isNull(auth) {
		r.Auth = auth
	}
	return r, nil
}

// Detach returns r with ID, Params and Auth copied into one new
// allocation, so that r no longer aliases the buffer it was decoded from.
func (r Request) Detach() Request {
	buf := make([]byte, len(r.ID)+len(r.Params)+len(r.Auth))
	n := copy(buf, r.ID)
	m := n + copy(buf[n:], r.Params)
	copy(buf[m:], r.Auth)
	if r.ID != nil {
		r.ID = buf[:n:n]
	}
	if r.Params != nil {
		r.Params = buf[n:m:m]
	}
	if r.Auth != nil {
		r.Auth = buf[m:]
	}
	return r
}

// The skip functions walk JSON that json.Valid has accepted, so they need
// not check syntax, only stay within bounds.

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// stringValue decodes a JSON string value; ok is false for any other type.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	// Escapes and invalid UTF-8 (which becomes U+FFFD) as encoding/json does.
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// AppendResult appends a success response. result must be valid JSON;
// nil is written as null.
func AppendResult(buf []byte, id json.RawMessage, src, dst string, result json.RawMessage) []byte {
	buf = appendHead(buf, id, src, dst)
	buf = append(buf, `,"result":`...)
	if len(result) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, result...)
	}
	return append(buf, '}')
}

// AppendError appends an error response.
func AppendError(buf []byte, id json.RawMessage, src, dst string, code int, message string) []byte {
	buf = appendHead(buf, id, src, dst)
	buf = append(buf, `,"error":{"code":`...)
	buf = appendInt(buf, code)
	buf = append(buf, `,"message":`...)
	buf = AppendString(buf, message)
	return append(buf, "}}"...)
}

func appendHead(buf []byte, id json.RawMessage, src, dst string) []byte {
	buf = append(buf, `{"id":`...)
	if len(id) == 0 {
		id = json.RawMessage("null") // callers never answer id-less requests; stay valid JSON anyway
	}
	buf = append(buf, id...)
	buf = append(buf, `,"src":`...)
	buf = AppendString(buf, src)
	if dst != "" {
		buf = append(buf, `,"dst":`...)
		buf = AppendString(buf, dst)
	}
	return buf
}

// AppendNotification appends a notification frame. params must be valid JSON.
func AppendNotification(buf []byte, src, dst, method string, params json.RawMessage) []byte {
	buf = append(buf, `{"src":`...)
	buf = AppendString(buf, src)
	if dst != "" {
		buf = append(buf, `,"dst":`...)
		buf = AppendString(buf, dst)
	}
	buf = append(buf, `,"method":`...)
	buf = AppendString(buf, method)
	buf = append(buf, `,"params":`...)
	if len(params) == 0 {
		buf = append(buf, "{}"...)
	} else {
		buf = append(buf, params...)
	}
	return append(buf, '}')
}

func appendInt(buf []byte, n int) []byte {
	return strconv.AppendInt(buf, int64(n), 10) // handles math.MinInt, unlike negating n
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping as encoding/json does
// (minus HTML escaping, which no peer needs). Invalid UTF-8 becomes U+FFFD.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
