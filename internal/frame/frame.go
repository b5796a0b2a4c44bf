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
}

// Errors returned by Decode. Each means the frame is dropped unanswered.
var (
	ErrNotObject  = errors.New("frame is not a JSON object")
	ErrBadID      = errors.New("id is neither a number nor a string")
	ErrBadMethod  = errors.New("method is missing or not a string")
	ErrBadSrc     = errors.New("src is not a string")
	ErrMalformed  = errors.New("frame is not valid JSON")
	ErrNotRequest = errors.New("frame has no method")
)

type wireRequest struct {
	ID     json.RawMessage
	Src    json.RawMessage
	Method json.RawMessage
	Params json.RawMessage
}

// Decode parses one request frame. It never panics; any error means the frame
// is malformed and must be dropped without a reply.
func Decode(data []byte) (Request, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		if len(data) > 0 && !json.Valid(data) {
			return Request{}, ErrMalformed
		}
		return Request{}, ErrNotObject
	}
	// A map, not a struct: encoding/json matches struct fields ignoring case,
	// so "ID" or "Method" would be taken for "id" or "method".
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Request{}, ErrMalformed
	}
	w := wireRequest{ID: fields["id"], Src: fields["src"], Method: fields["method"], Params: fields["params"]}
	var r Request
	if len(w.ID) > 0 && !isNull(w.ID) {
		switch c := w.ID[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
			r.ID = w.ID
		default:
			return Request{}, ErrBadID
		}
	} else if len(w.ID) > 0 {
		return Request{}, ErrBadID
	}
	if len(w.Method) == 0 || isNull(w.Method) {
		return Request{}, ErrNotRequest
	}
	if w.Method[0] != '"' {
		return Request{}, ErrBadMethod
	}
	if err := json.Unmarshal(w.Method, &r.Method); err != nil || r.Method == "" {
		return Request{}, ErrBadMethod
	}
	if len(w.Src) > 0 && !isNull(w.Src) {
		if w.Src[0] != '"' {
			return Request{}, ErrBadSrc
		}
		if err := json.Unmarshal(w.Src, &r.Src); err != nil {
			return Request{}, ErrBadSrc
		}
	}
	if len(w.Params) > 0 && !isNull(w.Params) {
		r.Params = w.Params
	}
	return r, nil
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
