package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Gate is a device's nonce table, as a device keeps it in RAM. It is
// bounded: at most MaxLiveNonces entries, whatever clients send. Each
// wrong credential counts one failure on the entry issued in answer to it,
// until that nonce is used successfully; when failures would fill the
// table the gate locks for LockoutDuration and then forgets them. It is
// safe for concurrent use.
type Gate struct {
	now         func() time.Time
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

// NewGate returns an empty gate that reads the time from now, a wall
// clock: nonces live NonceLifetime and lockouts last LockoutDuration of it.
func NewGate(now func() time.Time) *Gate {
	g := &Gate{now: now}
	_, _ = rand.Read(g.key[:])
	return g
}

// Reset forgets every nonce, failure and lockout, and takes a new key, as
// a reboot loses RAM: no nonce issued before is known after it.
func (g *Gate) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nonces, g.lockedUntil = nil, time.Time{}
	_, _ = rand.Read(g.key[:])
}

// Verdict is what the gate decided about one request.
type Verdict struct {
	OK         bool          // admitted
	Locked     bool          // refused with 429 for RetryAfter
	RetryAfter time.Duration // while Locked
	Nonce      string        // the fresh challenge nonce when neither OK nor Locked
	Stale      bool          // the challenge says stale: the password was right
}

// Check decides a request carrying creds (none, or nil ones: a bare
// request, which is challenged, not failed) against realm and ha1. The first
// credential that verifies admits it; every other one checked is a
// failure, unless it is stale (right password, nonce no longer live).
func (g *Gate) Check(realm, ha1 string, creds ...*Credential) Verdict {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.lockedUntil) {
		return Verdict{Locked: true, RetryAfter: g.lockedUntil.Sub(now)}
	}
	fails, stale := 0, false
	for _, cr := range creds {
		if cr == nil {
			continue
		}
		ok, s := g.verify(realm, ha1, cr, now)
		switch {
		case ok:
			return Verdict{OK: true}
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
			return Verdict{Locked: true, RetryAfter: LockoutDuration}
		}
	}
	return Verdict{Nonce: g.issue(now, fails), Stale: stale}
}

// verify checks one credential; stale reports a correct response with a
// nonce of ours that is no longer live (expired, evicted). A correct one
// records its nc as used.
func (g *Gate) verify(realm, ha1 string, cr *Credential, now time.Time) (ok, stale bool) {
	want := hexSHA256(ha1 + ":" + cr.nonce + ":" + cr.ncText + ":" + cr.cnonce + ":auth:" + cr.ha2)
	respOK := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.response))) == 1
	if cr.username != User || cr.realm != realm {
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

func (g *Gate) find(nonce string) int {
	for i := range g.nonces {
		if subtle.ConstantTimeCompare([]byte(g.nonces[i].nonce), []byte(nonce)) == 1 {
			return i
		}
	}
	return -1
}

func (g *Gate) remove(i int) {
	last := len(g.nonces) - 1
	g.nonces[i] = g.nonces[last]
	g.nonces = g.nonces[:last]
}

// issue adds a fresh nonce carrying fails failures, making room by
// dropping an expired entry, else the least recently used one without
// failures. Check locks out before failures can fill the table, so there
// always is one.
func (g *Gate) issue(now time.Time, fails int) string {
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
func (g *Gate) mint(now time.Time) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:16])
	m := hmac.New(sha256.New, g.key[:])
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authentic returns when nonce was minted by this gate, or ok false.
func (g *Gate) authentic(nonce string) (issued time.Time, ok bool) {
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
