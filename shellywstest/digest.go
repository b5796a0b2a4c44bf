package shellywstest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/shellyws/shellyws"
)

// Challenge is a device's authentication challenge: the message of an RPC
// error 401, or the WWW-Authenticate header of an HTTP 401.
type Challenge struct {
	AuthType  string `json:"auth_type"` // "digest"
	Nonce     string `json:"nonce"`
	NC        uint64 `json:"nc"` // the nc to start from; 1 on a fresh nonce
	Realm     string `json:"realm"`
	Algorithm string `json:"algorithm"` // "SHA-256"
	Stale     bool   `json:"stale"`
}

// ParseChallenge parses the message of an RPC error 401, the JSON string
// {"auth_type":"digest","nonce":...,"nc":1,"realm":...,"algorithm":"SHA-256"}.
func ParseChallenge(message string) (Challenge, error) {
	var ch Challenge
	if err := json.Unmarshal([]byte(message), &ch); err != nil {
		return Challenge{}, fmt.Errorf("shellywstest: 401 message is not a JSON challenge: %w", err)
	}
	if ch.Nonce == "" || ch.Realm == "" {
		return Challenge{}, errors.New("shellywstest: challenge without nonce or realm")
	}
	if ch.NC == 0 {
		ch.NC = 1
	}
	return ch, nil
}

// FrameAuth returns the "auth" object a request frame carries to answer ch
// with password, as nc-th use of its nonce (1 for the first): the response
// is hex(SHA-256(ha1:nonce:nc:cnonce:auth:HA2)) with nc in plain decimal and
// HA2 = hex(SHA-256("dummy_method:dummy_uri")). Put it under "auth" in the
// frame; for the next request with the same nonce use nc+1.
func FrameAuth(ch Challenge, password string, nc uint64) map[string]any {
	cnonce := newCnonce()
	ha1 := shellyws.ComputeHA1(ch.Realm, password)
	ha2 := hexHash("dummy_method:dummy_uri")
	ncText := strconv.FormatUint(nc, 10)
	return map[string]any{
		"realm":     ch.Realm,
		"username":  shellyws.AuthUser,
		"nonce":     ch.Nonce,
		"cnonce":    cnonce,
		"response":  hexHash(ha1 + ":" + ch.Nonce + ":" + ncText + ":" + cnonce + ":auth:" + ha2),
		"algorithm": "SHA-256",
		"nc":        nc,
	}
}

// ParseWWWAuthenticate parses a device's WWW-Authenticate header,
// Digest qop="auth", realm="...", nonce="...", algorithm=SHA-256.
func ParseWWWAuthenticate(header string) (Challenge, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return Challenge{}, errors.New("shellywstest: not a Digest challenge")
	}
	ch := Challenge{AuthType: "digest", NC: 1}
	for _, part := range splitParams(rest) {
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if uq, err := strconv.Unquote(val); err == nil && strings.HasPrefix(val, `"`) {
			val = uq
		}
		switch name {
		case "realm":
			ch.Realm = val
		case "nonce":
			ch.Nonce = val
		case "algorithm":
			ch.Algorithm = val
		case "stale":
			ch.Stale = strings.EqualFold(val, "true")
		}
	}
	if ch.Nonce == "" || ch.Realm == "" {
		return Challenge{}, errors.New("shellywstest: challenge without nonce or realm")
	}
	return ch, nil
}

// splitParams splits at commas outside quotes.
func splitParams(s string) []string {
	var parts []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// DigestAuthorization returns the Authorization header value for an HTTP
// request (method, and uri as in the request line: path and query) that
// answers ch with password as its nc-th use.
func DigestAuthorization(ch Challenge, password, method, uri string, nc uint64) string {
	cnonce := newCnonce()
	ha1 := shellyws.ComputeHA1(ch.Realm, password)
	ha2 := hexHash(method + ":" + uri)
	ncText := fmt.Sprintf("%08x", nc)
	resp := hexHash(ha1 + ":" + ch.Nonce + ":" + ncText + ":" + cnonce + ":auth:" + ha2)
	return fmt.Sprintf(`Digest username="%s", realm=%q, nonce=%q, uri=%q, algorithm=SHA-256, qop=auth, nc=%s, cnonce=%q, response=%q`,
		shellyws.AuthUser, ch.Realm, ch.Nonce, uri, ncText, cnonce, resp)
}

// DigestTransport is an http.RoundTripper that answers a device's digest
// challenges as curl --digest -u admin:PASSWORD does: a request answered
// 401 with a Digest challenge is sent again with credentials, and once
// more if that answer says the nonce was stale. The nonce is kept and
// reused with a growing nc, so later requests need no extra round trip.
// Requests with a body must have GetBody set (http.NewRequest does for
// common bodies).
//
// Safe for concurrent use: while it has no nonce yet, one request asks for
// the challenge and the others wait for it, so that concurrent requests
// share one nonce (with distinct ncs, which the device accepts in any
// order within its window of 128) instead of each costing the device a
// nonce of its own.
type DigestTransport struct {
	Password string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu      sync.Mutex
	ch      *Challenge
	nc      uint64
	probing chan struct{} // closed when the request asking for a challenge is answered
	open    bool          // the device answered without a challenge
}

// maxDigestAttempts bounds the sends of one request: without credentials
// or with the kept nonce, with a fresh one, and once more after a stale.
const maxDigestAttempts = 3

// RoundTrip implements http.RoundTripper.
func (t *DigestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	for attempt := 1; ; attempt++ {
		hdr, used, wait, probe := t.next(req)
		if wait != nil {
			select {
			case <-wait:
				attempt-- // nothing was sent
				continue
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
		out := req.Clone(req.Context())
		if attempt > 1 && hasBody(req) {
			body, err := req.GetBody() // set: checked before the resend
			if err != nil {
				return nil, err
			}
			out.Body = body
		}
		if hdr != "" {
			out.Header.Set("Authorization", hdr)
		}
		resp, err := base.RoundTrip(out)
		var ch *Challenge
		if err == nil && resp.StatusCode == http.StatusUnauthorized {
			if c, perr := ParseWWWAuthenticate(resp.Header.Get("WWW-Authenticate")); perr == nil {
				ch = &c
			}
		}
		if probe {
			t.endProbe(ch, err == nil && ch == nil)
		}
		// A refusal of fresh credentials that is not stale is a wrong password.
		if ch == nil || attempt >= maxDigestAttempts || (attempt > 1 && !ch.Stale) {
			return resp, err
		}
		if hasBody(req) && req.GetBody == nil {
			return resp, nil // cannot resend the body: hand back the 401
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		t.adopt(used, *ch)
	}
}

func hasBody(req *http.Request) bool { return req.Body != nil && req.Body != http.NoBody }

// next returns the Authorization header for req with the kept nonce, and
// that nonce; without one, either a channel to wait on while another
// request asks for the challenge, or probe true: this request asks.
func (t *DigestTransport) next(req *http.Request) (hdr, nonce string, wait chan struct{}, probe bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ch != nil:
		t.nc++
		return DigestAuthorization(*t.ch, t.Password, req.Method, req.URL.RequestURI(), t.nc), t.ch.Nonce, nil, false
	case t.open:
		return "", "", nil, false
	case t.probing != nil:
		return "", "", t.probing, false
	}
	t.probing = make(chan struct{})
	return "", "", nil, true
}

// endProbe ends the wait for a challenge: ch is the one that came, open
// says the device answered without one.
func (t *DigestTransport) endProbe(ch *Challenge, open bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch != nil && t.ch == nil {
		t.ch, t.nc = ch, 0
	}
	t.open = t.open || open
	close(t.probing)
	t.probing = nil
}

// adopt takes ch's nonce, unless another request replaced the nonce that
// was used (or none) already: concurrent refusals then share one fresh
// nonce instead of each replacing the other's.
func (t *DigestTransport) adopt(used string, ch Challenge) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ch == nil || t.ch.Nonce == used {
		t.ch, t.nc = &ch, 0
	}
}

func newCnonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hexHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
