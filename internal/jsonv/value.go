// Package jsonv holds JSON values that keep what a device sent: object keys
// in their order and number literals as written (60.0 stays 60.0), with
// strings that embed the captured MAC rendered per device. Device models
// are parsed into it once and shared read-only by every device of the
// model.
package jsonv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// A Value is one node of a parsed dump, shared read-only by every device of
// its profile: *Object, []Value, string, json.Number (the dump's literal, so
// 60.0 stays 60.0), bool, nil, or Templated.
type Value any

// Object is a JSON object with its keys in the dump's order. Devices answer
// with the keys in the order the real device sent them.
type Object struct {
	Keys []string
	Vals []Value
}

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (Value, bool) {
	if o == nil {
		return nil, false
	}
	for i, k := range o.Keys {
		if k == key {
			return o.Vals[i], true
		}
	}
	return nil, false
}

// Has reports whether key is present.
func (o *Object) Has(key string) bool {
	_, ok := o.Get(key)
	return ok
}

// Object returns the value of key if it is an object, else nil.
func (o *Object) Object(key string) *Object {
	v, _ := o.Get(key)
	obj, _ := v.(*Object)
	return obj
}

// Number returns the value of key as a float64; ok is false if it is not a
// number.
func (o *Object) Number(key string) (float64, bool) {
	v, _ := o.Get(key)
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// String returns the value of key if it is a plain string.
func (o *Object) String(key string) (string, bool) {
	v, _ := o.Get(key)
	switch s := v.(type) {
	case string:
		return s, true
	case Templated:
		return string(s), true
	}
	return "", false
}

// Templated is a string of the dump that embeds the captured device's MAC
// (ids, MQTT topics, access-point SSIDs): every device renders it with its
// own MAC, in the case the dump used.
type Templated string

// parseValue reads one JSON value from dec, keeping object key order and
// number literals.
func parseValue(dec *json.Decoder) (Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &Object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				obj.Keys = append(obj.Keys, k)
				obj.Vals = append(obj.Vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []Value{}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

// Parse parses data as one JSON value with nothing after it.
func Parse(data []byte) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

// TemplateMAC walks v and turns every string holding mac (in either case)
// into a Templated, so devices render their own MAC there.
func TemplateMAC(v Value, mac string) Value {
	switch t := v.(type) {
	case string:
		if mac != "" && strings.Contains(strings.ToUpper(t), mac) {
			return Templated(t)
		}
	case *Object:
		for i := range t.Vals {
			t.Vals[i] = TemplateMAC(t.Vals[i], mac)
		}
	case []Value:
		for i := range t {
			t[i] = TemplateMAC(t[i], mac)
		}
	}
	return v
}

// Render substitutes mac (upper-case, 12 hex digits) for the captured MAC
// dumpMAC in s, keeping the case each occurrence had.
func Render(s Templated, dumpMAC, mac string) string {
	str := string(s)
	upper := strings.ToUpper(str)
	var b strings.Builder
	for {
		i := strings.Index(upper, dumpMAC)
		if i < 0 {
			b.WriteString(str)
			return b.String()
		}
		b.WriteString(str[:i])
		if lowerAt(s, str[i:i+len(dumpMAC)]) {
			b.WriteString(strings.ToLower(mac))
		} else {
			b.WriteString(mac)
		}
		str, upper = str[i+len(dumpMAC):], upper[i+len(dumpMAC):]
	}
}

// lowerAt reports whether the captured MAC found in s was written in
// lower case. A MAC of digits only has no case of its own: it is lower case
// in a string written in lower case (an id), upper case otherwise (sys.mac).
func lowerAt(s Templated, found string) bool {
	if found != strings.ToUpper(found) {
		return true
	}
	if found != strings.ToLower(found) {
		return false
	}
	str := string(s)
	return str != strings.ToUpper(str) && str == strings.ToLower(str)
}

// Patch overrides fields of a dump object when a device renders it: Val
// replaces the dump's value of Key (a nested Patch merges into a nested
// object); a Key the dump lacks is added after the dump's keys. Val is
// encoded with encoding/json.
type Patch []Field

// Field is one override of a Patch.
type Field struct {
	Key string
	Val any
}

// Get returns the patch's value of key.
func (p Patch) Get(key string) (any, bool) {
	for _, f := range p {
		if f.Key == key {
			return f.Val, true
		}
	}
	return nil, false
}

// Map returns the patch as a map, nested patches included, for a
// NotifyStatus delta. A float64 whose place in tmpl (the status the patch
// applies to; nil for none) holds a number written with a decimal point
// becomes a Decimal, so the delta prints 244.0 where the device would.
func (p Patch) Map(tmpl *Object) map[string]any {
	m := make(map[string]any, len(p))
	for _, f := range p {
		cur, _ := tmpl.Get(f.Key)
		m[f.Key] = deltaValue(f.Val, cur)
	}
	return m
}

// Delta returns v (a value, a map of values or a Patch) as a NotifyStatus
// delta carries it, given the template value cur it replaces: see Map.
func Delta(v any, cur Value) any { return deltaValue(v, cur) }

// deltaValue is v as a delta carries it, given the template value cur.
func deltaValue(v any, cur Value) any {
	switch t := v.(type) {
	case Patch:
		obj, _ := cur.(*Object)
		return t.Map(obj)
	case map[string]any:
		obj, _ := cur.(*Object)
		out := make(map[string]any, len(t))
		for k, sub := range t {
			c, _ := obj.Get(k)
			out[k] = deltaValue(sub, c)
		}
		return out
	case float64:
		if hasPoint(cur) {
			return Decimal(t)
		}
	}
	return v
}

// hasPoint reports whether v is a number literal written with a decimal
// point or an exponent.
func hasPoint(v Value) bool {
	n, ok := v.(json.Number)
	return ok && strings.ContainsAny(string(n), ".eE")
}

// Decimal is a reading printed as devices print readings: with at least
// one decimal, 244.0 and never 244 (energy-meter clients such as Marstek
// batteries refuse an integer where a real device prints a decimal).
type Decimal float64

// MarshalJSON prints d with at least one decimal; NaN and infinities,
// which JSON cannot hold, print as null.
func (d Decimal) MarshalJSON() ([]byte, error) { return AppendDecimal(nil, float64(d)), nil }

// AppendDecimal appends f with at least one decimal.
func AppendDecimal(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, f, 'f', -1, 64)
	if !bytes.ContainsAny(buf[start:], ".eE") {
		buf = append(buf, ".0"...)
	}
	return buf
}

// AppendJSON appends v encoded as JSON, with Templated strings rendered for
// mac (upper-case) in place of dumpMAC and patch applied to v when v is an
// object.
func AppendJSON(buf []byte, v Value, dumpMAC, mac string, patch Patch) ([]byte, error) {
	switch t := v.(type) {
	case *Object:
		buf = append(buf, '{')
		n := 0
		for i, k := range t.Keys {
			if n > 0 {
				buf = append(buf, ',')
			}
			n++
			buf = appendString(buf, k)
			buf = append(buf, ':')
			var err error
			if pv, ok := patch.Get(k); ok {
				sub, isPatch := pv.(Patch)
				f, isFloat := pv.(float64)
				if obj, isObj := t.Vals[i].(*Object); isPatch && isObj {
					buf, err = AppendJSON(buf, obj, dumpMAC, mac, sub)
				} else if isFloat && hasPoint(t.Vals[i]) {
					buf = AppendDecimal(buf, f)
				} else {
					buf, err = appendAny(buf, pv)
				}
			} else {
				buf, err = AppendJSON(buf, t.Vals[i], dumpMAC, mac, nil)
			}
			if err != nil {
				return nil, err
			}
		}
		for _, f := range patch {
			if t.Has(f.Key) {
				continue
			}
			if n > 0 {
				buf = append(buf, ',')
			}
			n++
			buf = appendString(buf, f.Key)
			buf = append(buf, ':')
			var err error
			if buf, err = appendAny(buf, f.Val); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case []Value:
		buf = append(buf, '[')
		for i, e := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = AppendJSON(buf, e, dumpMAC, mac, nil); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case Templated:
		return appendString(buf, Render(t, dumpMAC, mac)), nil
	case string:
		return appendString(buf, t), nil
	case json.Number:
		return append(buf, t...), nil
	case bool:
		return strconv.AppendBool(buf, t), nil
	case nil:
		return append(buf, "null"...), nil
	}
	return nil, fmt.Errorf("jsonv: cannot encode %T", v)
}

// appendAny appends a patch value.
func appendAny(buf []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case bool:
		return strconv.AppendBool(buf, t), nil
	case int:
		return strconv.AppendInt(buf, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(buf, t, 10), nil
	case string:
		return appendString(buf, t), nil
	case Patch:
		return AppendJSON(buf, &Object{}, "", "", t)
	case json.RawMessage:
		return append(buf, t...), nil
	case Decimal:
		return AppendDecimal(buf, float64(t)), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

// appendString appends s quoted; strings that need no escaping (nearly all
// of a dump) skip encoding/json.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
