package digest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Parsing errors. Their text goes on the wire, so it never quotes input.
var (
	ErrNotDigest   = errors.New("not the Digest scheme")
	ErrUnsupported = errors.New("unsupported algorithm or qop")
)

// Params are the parameters of an Authorization: Digest header,
// lower-cased names to unquoted values.
type Params map[string]string

// ParseHeader parses `Digest name=value, name="quoted", ...`
// (RFC 7616 section 3.4). Another scheme is ErrNotDigest; anything else
// that does not follow the grammar, repeats a name, or is too long, is an
// error.
func ParseHeader(h string) (Params, error) {
	if len(h) > maxAuthHeader {
		return nil, errors.New("too long")
	}
	scheme, rest, _ := strings.Cut(strings.TrimLeft(h, " \t"), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, ErrNotDigest
	}
	p := Params{}
	i := 0
	for {
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t' || rest[i] == ',') {
			i++
		}
		if i == len(rest) {
			break
		}
		start := i
		for i < len(rest) && isTokenChar(rest[i]) {
			i++
		}
		name := strings.ToLower(rest[start:i])
		if name == "" {
			return nil, errors.New("expected a parameter name")
		}
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		if i == len(rest) || rest[i] != '=' {
			return nil, errors.New("parameter without a value")
		}
		i++
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		var val string
		if i < len(rest) && rest[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(rest) {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					b.WriteByte(rest[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quoted string")
			}
			val = b.String()
		} else {
			start := i
			for i < len(rest) && isTokenChar(rest[i]) {
				i++
			}
			val = rest[start:i]
		}
		if _, dup := p[name]; dup {
			return nil, errors.New("a parameter is given twice")
		}
		if len(p) >= 32 {
			return nil, errors.New("too many parameters")
		}
		p[name] = val
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		if i < len(rest) && rest[i] != ',' {
			return nil, errors.New("expected a comma between parameters")
		}
	}
	return p, nil
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?={}`, rune(c))
}

// Credential checks that the header's parameters are complete and of our
// kind, and turns them into the credential of a request with method and
// requestURI (as net/http's Request.Method and Request.RequestURI). A
// header for another algorithm or qop (or with userhash) is
// ErrUnsupported: the client is challenged with ours.
func (p Params) Credential(method, requestURI string) (*Credential, error) {
	for _, k := range []string{"username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce"} {
		v, ok := p[k]
		if !ok {
			return nil, errors.New("missing " + k)
		}
		if len(v) > maxCredField && k != "uri" {
			return nil, errors.New(k + " too long")
		}
	}
	if !strings.EqualFold(p["algorithm"], "SHA-256") || !strings.EqualFold(p["qop"], "auth") ||
		strings.EqualFold(p["userhash"], "true") {
		return nil, ErrUnsupported
	}
	nc := p["nc"]
	if len(nc) == 0 || len(nc) > 8 {
		return nil, errors.New("nc must be 1 to 8 hex digits")
	}
	ncVal, err := strconv.ParseUint(nc, 16, 32)
	if err != nil {
		return nil, errors.New("nc must be 1 to 8 hex digits")
	}
	if !isHex(p["response"], sha256.Size*2) {
		return nil, errors.New("response must be 64 hex digits")
	}
	if p["uri"] != requestURI {
		return nil, errors.New("uri does not match the request")
	}
	return &Credential{
		username: p["username"],
		realm:    p["realm"],
		nonce:    p["nonce"],
		cnonce:   p["cnonce"],
		response: p["response"],
		ncText:   nc,
		nc:       ncVal,
		ha2:      hexSHA256(method + ":" + p["uri"]),
	}, nil
}

// ParseAuthObject parses a frame's "auth" object:
// {"realm","username","nonce","cnonce","response","algorithm","nc"}.
// nonce and cnonce may be strings or integers (clients send both) and enter
// the hash as written; nc is 1 when absent (aioshelly sends none), else
// see parseFrameNC; algorithm, when given, must be SHA-256.
func ParseAuthObject(raw json.RawMessage) (*Credential, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return nil, errors.New("auth is not an object")
	}
	str := func(key string, intOK bool) (string, error) {
		v, ok := f[key]
		if !ok {
			return "", errors.New("missing " + key)
		}
		if len(v) > maxCredField+2 {
			return "", errors.New(key + " too long")
		}
		if intOK && isIntToken(v) {
			return string(v), nil
		}
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return "", errors.New(key + " has the wrong type")
		}
		return s, nil
	}
	cr := &Credential{ha2: frameHA2, ncText: "1", nc: 1}
	var err error
	if cr.username, err = str("username", false); err != nil {
		return nil, err
	}
	if cr.realm, err = str("realm", false); err != nil {
		return nil, err
	}
	if cr.nonce, err = str("nonce", true); err != nil {
		return nil, err
	}
	if cr.cnonce, err = str("cnonce", true); err != nil {
		return nil, err
	}
	if cr.response, err = str("response", false); err != nil {
		return nil, err
	}
	if !isHex(cr.response, sha256.Size*2) {
		return nil, errors.New("response must be 64 hex digits")
	}
	if v, ok := f["algorithm"]; ok {
		var alg string
		if json.Unmarshal(v, &alg) != nil || !strings.EqualFold(alg, "SHA-256") {
			return nil, errors.New("algorithm must be SHA-256")
		}
	}
	if v, ok := f["nc"]; ok && !isJSONNull(v) {
		if cr.ncText, cr.nc, err = parseFrameNC(v); err != nil {
			return nil, err
		}
	}
	return cr, nil
}

// errFrameNC is the error of an auth object's nc of neither form.
var errFrameNC = errors.New("nc must be an integer from 1 or a string of 1 to 8 hex digits")

// parseFrameNC parses an auth object's nc: a JSON integer from 1 (as
// aioshelly counts; it enters the hash in plain decimal, as written) or a
// string of 1 to 8 hex digits of a value from 1 (RFC 7616's form, which
// matterbridge-shelly sends: "00000001"; it enters the hash as sent).
func parseFrameNC(v json.RawMessage) (text string, nc uint64, err error) {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil || len(s) == 0 || len(s) > 8 || !isHex(s, len(s)) {
			return "", 0, errFrameNC
		}
		n, err := strconv.ParseUint(s, 16, 32)
		if err != nil || n == 0 {
			return "", 0, errFrameNC
		}
		return s, n, nil
	}
	if !isIntToken(v) || v[0] == '-' || v[0] == '0' || len(v) > 10 {
		return "", 0, errFrameNC
	}
	n, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return "", 0, errFrameNC
	}
	return string(v), n, nil
}

// isIntToken reports whether v is a JSON integer: an optional minus and
// digits, nothing else.
func isIntToken(v []byte) bool {
	s := v
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
