// Package digest is the device's side of digest authentication as a Gen2
// device speaks it (RFC 7616 with SHA-256 and qop auth; protocol section
// 10): an Authorization header or a frame's "auth" object parsed into a
// Credential, the 401 challenges, and the Gate, the nonce table a device
// keeps in RAM with its nc window and lockout.
//
// It is pure and knows nothing of connections, handlers or the component:
// the realm and ha1 are its caller's, and so is the clock. It imports
// nothing of the module; the root package's Handler is its one user.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// User is the only user a Gen2 device knows.
const User = "admin"

// The firmware's nonce rules (protocol section 10).
const (
	// NonceLifetime is how long a nonce may be used.
	NonceLifetime = time.Hour
	// MaxLiveNonces bounds the nonce table; when failed attempts fill it
	// every request is refused for LockoutDuration.
	MaxLiveNonces = 32
	// LockoutDuration is how long requests are answered 429 once failed
	// attempts filled the nonce table.
	LockoutDuration = 2 * time.Second
	// NCWindow is how far below the highest nc seen on a nonce an unused
	// nc is still accepted: concurrent requests on one nonce may arrive
	// in any order. Room for 64 concurrent requests and as many again.
	NCWindow = 128
)

// TooManyFailuresMessage is the message of the 429 answered while locked out.
const TooManyFailuresMessage = "Too many failed authentication attempts"

// Bounds on what a credential may carry, so that parsing and the table stay
// small whatever a client sends.
const (
	maxAuthHeader = 4096
	maxCredField  = 256
)

// HA1 returns hex(SHA-256("admin:<realm>:<password>")), what a device
// stores instead of its password.
func HA1(realm, password string) string {
	return hexSHA256(User + ":" + realm + ":" + password)
}

// ValidHA1 reports whether s has the form of an ha1: 64 hex digits, of
// either case.
func ValidHA1(s string) bool { return isHex(s, sha256.Size*2) }

// frameHA2 is HA2 of every RPC frame: the firmware hashes a fixed
// "dummy_method:dummy_uri" instead of an HTTP method and URI.
var frameHA2 = hexSHA256("dummy_method:dummy_uri")

// Credential is one parsed attempt to authenticate: an Authorization
// header (Params.Credential) or an auth object (ParseAuthObject). ncText
// is nc as it enters the hash: as the client wrote it (8 hex digits on
// HTTP; in frames a number in decimal or a string of hex digits), nc its
// value.
type Credential struct {
	username, realm, nonce, cnonce, response string
	ncText                                   string
	nc                                       uint64
	ha2                                      string
}

// ChallengeMessage is the message of a frame's 401: a JSON string clients
// parse, with the keys in the firmware's order.
func ChallengeMessage(realm, nonce string, stale bool) string {
	buf := make([]byte, 0, 160)
	buf = append(buf, `{"auth_type":"digest","nonce":`...)
	buf = appendJSONString(buf, nonce)
	buf = append(buf, `,"nc":1,"realm":`...)
	buf = appendJSONString(buf, realm)
	buf = append(buf, `,"algorithm":"SHA-256"`...)
	if stale {
		buf = append(buf, `,"stale":true`...)
	}
	return string(append(buf, '}'))
}

// ChallengeHeader is the WWW-Authenticate value of an HTTP 401.
func ChallengeHeader(realm, nonce string, stale bool) string {
	h := `Digest qop="auth", realm=` + quoteHeader(realm) + `, nonce=` + quoteHeader(nonce) + `, algorithm=SHA-256`
	if stale {
		h += ", stale=true"
	}
	return h
}

// appendJSONString appends s as a JSON string. Realms are device ids and
// nonces base64url, so nothing in them needs more than encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(buf, q...)
}

func quoteHeader(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// isHex reports whether s is exactly n hex digits, of either case.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
