package shellyws

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shellyws/shellyws/internal/frame"
)

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

// frameHA2 is HA2 of every RPC frame: the firmware hashes a fixed
// "dummy_method:dummy_uri" instead of an HTTP method and URI.
var frameHA2 = hexSHA256("dummy_method:dummy_uri")

// Bounds on what a credential may carry, so that parsing and the table stay
// small whatever a client sends.
const (
	maxAuthHeader = 4096
	maxCredField  = 256
)

// credential is one parsed attempt: an Authorization header or an auth
// object. ncText is nc as it enters the hash: as the client wrote it (8
// hex digits on HTTP; in frames a number in decimal or a string of hex
// digits), nc its value.
type credential struct {
	username, realm, nonce, cnonce, response string
	ncText                                   string
	nc                                       uint64
	ha2                                      string
}

// authGate is a Handler's nonce table, as a device keeps it in RAM. It is
// bounded: at most MaxLiveNonces entries, whatever clients send. Each
// wrong credential counts one failure on the entry issued in answer to it,
// until that nonce is used successfully; when failures would fill the
// table the gate locks for LockoutDuration and then forgets them. It knows
// nothing of the Component: time, realm and ha1 are its caller's.
type authGate struct {
	mu          sync.Mutex
	key         [32]byte // authenticates nonces, so an evicted one can still be told stale
	nonces      []nonceEntry
	lockedUntil time.Time
}

type nonceEntry struct {
	nonce   string
	issued  time.Time
	lastUse time.Time
	fails   int    // wrong credentials answered with this nonce
	maxNC   uint64 // the highest nc used
	seen    ncBits // which of the NCWindow ncs up to maxNC were used
}

// ncBits is a window of NCWindow bits: bit i is nc maxNC-i.
type ncBits [NCWindow / 64]uint64

func (b *ncBits) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b *ncBits) set(i uint64)      { b[i/64] |= 1 << (i % 64) }

// shift moves every bit n places up, dropping those past the window.
func (b *ncBits) shift(n uint64) {
	if n >= NCWindow {
		*b = ncBits{}
		return
	}
	words, bitsN := int(n/64), n%64
	for i := len(b) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = b[j] << bitsN
			if bitsN > 0 && j > 0 {
				v |= b[j-1] >> (64 - bitsN)
			}
		}
		b[i] = v
	}
}

// useNC records nc as used and reports whether it may be: nc from 1, not
// used before, and within NCWindow of the highest nc seen (RFC 7616 asks
// only that a count is not used twice; concurrent requests on one nonce
// arrive in any order).
func (e *nonceEntry) useNC(nc uint64) bool {
	switch {
	case nc == 0:
		return false
	case nc > e.maxNC:
		e.seen.shift(nc - e.maxNC)
		e.maxNC = nc
		e.seen.set(0)
		return true
	case e.maxNC-nc >= NCWindow:
		return false // below the window: it may have been used
	case e.seen.has(e.maxNC - nc):
		return false // a replay
	}
	e.seen.set(e.maxNC - nc)
	return true
}

func newAuthGate() *authGate {
	g := &authGate{}
	_, _ = rand.Read(g.key[:])
	return g
}

// reset forgets every nonce, failure and lockout, and takes a new key, as
// a reboot loses RAM: no nonce issued before is known after it.
func (g *authGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nonces, g.lockedUntil = nil, time.Time{}
	_, _ = rand.Read(g.key[:])
}

// verdict is what the gate decided about one request.
type verdict struct {
	ok         bool
	locked     bool
	retryAfter time.Duration
	nonce      string // the fresh challenge nonce when neither ok nor locked
	stale      bool
}

// check decides a request carrying creds (none: a bare request, which is
// challenged, not failed) against realm and ha1 at now. The first
// credential that verifies admits it; every other one checked is a
// failure, unless it is stale (right password, nonce no longer live).
func (g *authGate) check(realm, ha1 string, now time.Time, creds ...*credential) verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.lockedUntil) {
		return verdict{locked: true, retryAfter: g.lockedUntil.Sub(now)}
	}
	fails, stale := 0, false
	for _, cr := range creds {
		if cr == nil {
			continue
		}
		ok, s := g.verify(realm, ha1, cr, now)
		switch {
		case ok:
			return verdict{ok: true}
		case s:
			stale = true
		default:
			fails++
		}
	}
	if fails > 0 {
		marks := 0
		for _, e := range g.nonces {
			if now.Sub(e.issued) < NonceLifetime {
				marks += e.fails
			}
		}
		if marks+fails >= MaxLiveNonces {
			g.lockedUntil = now.Add(LockoutDuration)
			for i := range g.nonces {
				g.nonces[i].fails = 0 // forgotten once the lockout ends
			}
			return verdict{locked: true, retryAfter: LockoutDuration}
		}
	}
	return verdict{nonce: g.issue(now, fails), stale: stale}
}

// verify checks one credential; stale reports a correct response with a
// nonce of ours that is no longer live (expired, evicted). A correct one
// records its nc as used.
func (g *authGate) verify(realm, ha1 string, cr *credential, now time.Time) (ok, stale bool) {
	want := hexSHA256(ha1 + ":" + cr.nonce + ":" + cr.ncText + ":" + cr.cnonce + ":auth:" + cr.ha2)
	respOK := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.response))) == 1
	if cr.username != AuthUser || cr.realm != realm {
		return false, false
	}
	i := g.find(cr.nonce)
	if i < 0 {
		issued, ours := g.authentic(cr.nonce)
		// Ours but gone from the table: expired, or evicted by newer ones.
		return false, ours && respOK && !issued.IsZero()
	}
	e := &g.nonces[i]
	if now.Sub(e.issued) >= NonceLifetime {
		g.remove(i)
		return false, respOK
	}
	if !respOK || !e.useNC(cr.nc) {
		return false, false
	}
	e.lastUse, e.fails = now, 0
	return true, false
}

func (g *authGate) find(nonce string) int {
	for i := range g.nonces {
		if subtle.ConstantTimeCompare([]byte(g.nonces[i].nonce), []byte(nonce)) == 1 {
			return i
		}
	}
	return -1
}

func (g *authGate) remove(i int) {
	last := len(g.nonces) - 1
	g.nonces[i] = g.nonces[last]
	g.nonces = g.nonces[:last]
}

// issue adds a fresh nonce carrying fails failures, making room by
// dropping an expired entry, else the least recently used one without
// failures. check locks out before failures can fill the table, so there
// always is one.
func (g *authGate) issue(now time.Time, fails int) string {
	if g.nonces == nil {
		g.nonces = make([]nonceEntry, 0, MaxLiveNonces)
	}
	if len(g.nonces) >= MaxLiveNonces {
		victim := -1
		for i, e := range g.nonces {
			if now.Sub(e.issued) >= NonceLifetime {
				victim = i
				break
			}
			if e.fails == 0 && (victim < 0 || e.lastUse.Before(g.nonces[victim].lastUse)) {
				victim = i
			}
		}
		if victim < 0 {
			victim = 0
		}
		g.remove(victim)
	}
	n := g.mint(now)
	g.nonces = append(g.nonces, nonceEntry{nonce: n, issued: now, lastUse: now, fails: fails})
	return n
}

// mint makes an opaque nonce: issue time, random bytes and a MAC over both,
// base64url-encoded. The MAC lets an expired or evicted nonce be told from
// one never issued.
func (g *authGate) mint(now time.Time) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:16])
	m := hmac.New(sha256.New, g.key[:])
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authentic returns when nonce was minted by this gate, or ok false.
func (g *authGate) authentic(nonce string) (issued time.Time, ok bool) {
	if len(nonce) != base64.RawURLEncoding.EncodedLen(32) {
		return time.Time{}, false
	}
	var b [32]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(nonce)); err != nil || n != 32 {
		return time.Time{}, false
	}
	m := hmac.New(sha256.New, g.key[:])
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// checkAuth runs the gate for a request of h's device: on WithClock's
// clock, and with the table emptied first when the device rebooted or
// slept since the gate was last used (nonces live in RAM).
func (h *Handler) checkAuth(a AuthConfig, creds ...*credential) verdict {
	power, _ := h.c.powerState()
	boot := authEpoch{power: power, wakes: h.c.wake.wakes.Load()}
	h.mu.Lock()
	if h.authBoot != boot {
		if h.authBoot.power != nil {
			h.auth.reset()
		}
		h.authBoot = boot
	}
	h.mu.Unlock()
	return h.auth.check(a.Realm, a.HA1, h.c.wallClock(), creds...)
}

// authEpoch tells one boot of a device from the next: a reboot makes a new
// power context, a wake counts up.
type authEpoch struct {
	power context.Context
	wakes uint64
}

// isExempt reports whether method never needs authentication.
func isExempt(method string) bool { return strings.EqualFold(method, deviceInfoMethod) }

// challengeMessage is the message of a frame's 401: a JSON string clients
// parse, with the keys in the firmware's order.
func challengeMessage(realm, nonce string, stale bool) string {
	buf := make([]byte, 0, 160)
	buf = append(buf, `{"auth_type":"digest","nonce":`...)
	buf = frame.AppendString(buf, nonce)
	buf = append(buf, `,"nc":1,"realm":`...)
	buf = frame.AppendString(buf, realm)
	buf = append(buf, `,"algorithm":"SHA-256"`...)
	if stale {
		buf = append(buf, `,"stale":true`...)
	}
	return string(append(buf, '}'))
}

// challengeHeader is the WWW-Authenticate value of an HTTP 401.
func challengeHeader(realm, nonce string, stale bool) string {
	h := `Digest qop="auth", realm=` + quoteHeader(realm) + `, nonce=` + quoteHeader(nonce) + `, algorithm=SHA-256`
	if stale {
		h += ", stale=true"
	}
	return h
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

// errLockedOut is the RPC error of a request refused during a lockout.
func errLockedOut() *Error {
	return &Error{Code: http.StatusTooManyRequests, Message: TooManyFailuresMessage}
}

// authorizeFrame decides an RPC frame on an inbound websocket: nil admits
// it, otherwise the *Error to answer (401 with the challenge, or 429).
func (h *Handler) authorizeFrame(req *Request) error {
	a := h.c.auth.get()
	if !a.Enable || isExempt(req.Method) {
		return nil
	}
	var cr *credential
	if len(req.auth) > 0 {
		cr, _ = parseAuthObject(req.auth)
	}
	v := h.checkAuth(a, cr)
	switch {
	case v.ok:
		return nil
	case v.locked:
		h.log.Debug("shellyws: inbound request refused: locked out", "method", req.Method)
		return errLockedOut()
	}
	h.log.Debug("shellyws: inbound request challenged", "method", req.Method, "with_auth", len(req.auth) > 0)
	return &Error{Code: CodeUnauthorized, Message: challengeMessage(a.Realm, v.nonce, v.stale)}
}

// authorizeHTTP decides a REST request (GET or POST /rpc/<method>, GET
// /shelly) by its Authorization header. It answers 401, 400 or 429 itself
// and returns false when the request must go no further.
func (h *Handler) authorizeHTTP(w http.ResponseWriter, r *http.Request, method string) bool {
	a := h.c.auth.get()
	if !a.Enable || isExempt(method) {
		return true
	}
	cr, ok := h.headerCredential(w, r)
	if !ok {
		return false
	}
	v := h.checkAuth(a, cr)
	if v.ok {
		return true
	}
	h.refuseHTTP(w, r, a, v, func(e *Error) []byte { return appendErrorObject(nil, e.Code, e.Message) })
	return false
}

// authorizePostFrame decides POST /rpc by its body, before the frame is
// decoded for dispatch: a valid auth object in the frame or a valid
// Authorization header admits it. A body that is no frame is challenged
// too, not answered 400, because curl --digest sends its first request
// with an empty body. A refusal is answered with the HTTP status (401 with
// WWW-Authenticate, or 429) and, for a frame with an id, the response
// frame carrying the same error.
func (h *Handler) authorizePostFrame(w http.ResponseWriter, r *http.Request, body []byte) bool {
	a := h.c.auth.get()
	if !a.Enable {
		return true
	}
	var req *Request
	var cr *credential
	if fr, err := frame.Decode(body); err == nil {
		if isExempt(fr.Method) {
			return true
		}
		req = &Request{ID: fr.ID, Src: fr.Src, Method: fr.Method}
		if len(fr.Auth) > 0 {
			cr, _ = parseAuthObject(fr.Auth)
		}
	}
	hdr, ok := h.headerCredential(w, r)
	if !ok {
		return false
	}
	v := h.checkAuth(a, cr, hdr)
	if v.ok {
		return true
	}
	h.refuseHTTP(w, r, a, v, func(e *Error) []byte {
		if req == nil || req.ID == nil {
			return appendErrorObject(nil, e.Code, e.Message)
		}
		return h.c.appendResponse(nil, req, nil, e)
	})
	return false
}

// headerCredential parses the Authorization header: nil without one (or
// with another scheme, which is challenged like none); a malformed Digest
// header is answered 400 and ok is false. Nothing of the header is logged
// or echoed.
func (h *Handler) headerCredential(w http.ResponseWriter, r *http.Request) (cr *credential, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, true
	}
	if len(vals) > 1 {
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: given more than once")
		return nil, false
	}
	d, err := parseDigestHeader(vals[0])
	switch {
	case errors.Is(err, errNotDigest):
		return nil, true
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: "+err.Error())
		return nil, false
	}
	cr, err = d.credential(r)
	switch {
	case errors.Is(err, errUnsupported):
		return nil, true // challenged, with the algorithm and qop we take
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: "+err.Error())
		return nil, false
	}
	return cr, true
}

func (h *Handler) refuseHTTP(w http.ResponseWriter, r *http.Request, a AuthConfig, v verdict, body func(*Error) []byte) {
	if v.locked {
		secs := int((v.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.log.Debug("shellyws: inbound HTTP request refused: locked out", "remote", r.RemoteAddr, "path", r.URL.Path)
		writeJSON(w, http.StatusTooManyRequests, body(errLockedOut()))
		return
	}
	w.Header().Set("WWW-Authenticate", challengeHeader(a.Realm, v.nonce, v.stale))
	h.log.Debug("shellyws: inbound HTTP request challenged", "remote", r.RemoteAddr, "path", r.URL.Path)
	writeJSON(w, http.StatusUnauthorized, body(&Error{Code: CodeUnauthorized, Message: challengeMessage(a.Realm, v.nonce, v.stale)}))
}

// Parsing errors. Their text goes on the wire, so it never quotes input.
var (
	errNotDigest   = errors.New("not the Digest scheme")
	errUnsupported = errors.New("unsupported algorithm or qop")
)

// digestParams are the parameters of an Authorization: Digest header,
// lower-cased names to unquoted values.
type digestParams map[string]string

// parseDigestHeader parses `Digest name=value, name="quoted", ...`
// (RFC 7616 section 3.4). Another scheme is errNotDigest; anything else
// that does not follow the grammar, repeats a name, or is too long, is an
// error.
func parseDigestHeader(h string) (digestParams, error) {
	if len(h) > maxAuthHeader {
		return nil, errors.New("too long")
	}
	scheme, rest, _ := strings.Cut(strings.TrimLeft(h, " \t"), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, errNotDigest
	}
	p := digestParams{}
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

// credential checks that the header's parameters are complete and of our
// kind, and turns them into a credential for r. A header for another
// algorithm or qop (or with userhash) is errUnsupported: the client is
// challenged with ours.
func (p digestParams) credential(r *http.Request) (*credential, error) {
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
		return nil, errUnsupported
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
	if p["uri"] != r.RequestURI {
		return nil, errors.New("uri does not match the request")
	}
	return &credential{
		username: p["username"],
		realm:    p["realm"],
		nonce:    p["nonce"],
		cnonce:   p["cnonce"],
		response: p["response"],
		ncText:   nc,
		nc:       ncVal,
		ha2:      hexSHA256(r.Method + ":" + p["uri"]),
	}, nil
}

// parseAuthObject parses a frame's "auth" object:
// {"realm","username","nonce","cnonce","response","algorithm","nc"}.
// nonce and cnonce may be strings or integers (clients send both) and enter
// the hash as written; nc is 1 when absent (aioshelly sends none), else
// see parseFrameNC; algorithm, when given, must be SHA-256.
func parseAuthObject(raw json.RawMessage) (*credential, error) {
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
	cr := &credential{ha2: frameHA2, ncText: "1", nc: 1}
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

// wallClock is WithClock's clock, unlike opts.now never the boot clock of
// WithBootClock, which restarts at every wake: nonces live an hour and
// lockouts last 2 s of it.
func (c *Component) wallClock() time.Time {
	if c.opts.clock != nil {
		return c.opts.clock()
	}
	return c.opts.now()
}

// authorizeRequest runs the peer's authorize hook, if any. trusted reports
// whether the request may subscribe its client to notifications: it was
// authenticated, or authentication is off. An exempt request is admitted
// but not trusted, since notifications carry the state auth protects.
func (p *peer) authorizeRequest(req *Request) (trusted bool, err error) {
	if p.authorize == nil {
		return true, nil
	}
	if err := p.authorize(req); err != nil {
		return false, err
	}
	return !p.c.auth.get().Enable || !isExempt(req.Method), nil
}
