package digest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseDigestHeader feeds arbitrary Authorization headers to the
// parser. Seeds are in testdata/fuzz/FuzzParseDigestHeader. It must never
// panic; what it accepts must be bounded, re-parse to the same parameters,
// and turn into a credential only with a 64-hex response and a 32-bit nc.
func FuzzParseDigestHeader(f *testing.F) {
	f.Add(`Digest username="admin", realm="shellyplus1pm-c049ef8cf4e0", nonce="abc", uri="/rpc/Ws.GetConfig", cnonce="x", nc=00000001, qop=auth, response="` + strings.Repeat("a", 64) + `", algorithm=SHA-256`)
	f.Add(`Digest a="b\"c", d=e`)
	f.Add(`Basic YWRtaW46cGFzcw==`)
	f.Fuzz(func(t *testing.T, header string) {
		p, err := ParseHeader(header)
		if err != nil {
			return
		}
		if len(p) > 32 {
			t.Fatalf("%d parameters kept", len(p))
		}
		// Written back out, quoted, the parameters parse to the same map.
		var b strings.Builder
		b.WriteString("Digest ")
		first := true
		for k, v := range p {
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(k + "=" + quoteHeader(v))
		}
		again, err := ParseHeader(b.String())
		if len(b.String()) <= maxAuthHeader {
			if err != nil {
				t.Fatalf("re-parse of %q: %v", b.String(), err)
			}
			if len(again) != len(p) {
				t.Fatalf("re-parse kept %d of %d parameters", len(again), len(p))
			}
			for k, v := range p {
				if again[k] != v {
					t.Fatalf("re-parse changed %s: %q to %q", k, v, again[k])
				}
			}
		}
		cr, err := p.Credential(http.MethodGet, p["uri"])
		if err != nil {
			return
		}
		if !isHex(cr.response, 64) {
			t.Fatalf("accepted response %q", cr.response)
		}
		n, perr := strconv.ParseUint(cr.ncText, 16, 32)
		if perr != nil || n != cr.nc {
			t.Fatalf("nc %q taken as %d", cr.ncText, cr.nc)
		}
	})
}

// FuzzParseAuthObject feeds arbitrary "auth" objects to the parser and what
// it accepts to a nonce table. Seeds are in
// testdata/fuzz/FuzzParseAuthObject. It must never panic; an accepted
// object has bounded fields, a 64-hex response and an nc from 1, written
// as sent: a JSON number in plain decimal or a string of 1 to 8 hex
// digits; the table never grows past MaxLiveNonces.
func FuzzParseAuthObject(f *testing.F) {
	f.Add([]byte(`{"realm":"shellyplus1pm-c049ef8cf4e0","username":"admin","nonce":"n","cnonce":"c","response":"` + strings.Repeat("0", 64) + `","algorithm":"SHA-256","nc":1}`))
	f.Add([]byte(`{"realm":"r","username":"admin","nonce":1716554701,"cnonce":1716556501,"response":"` + strings.Repeat("F", 64) + `"}`))
	f.Add([]byte(`{"nc":"1"}`))
	f.Add([]byte(`{"realm":"r","username":"admin","nonce":"n","cnonce":123,"nc":"0000000a","response":"` + strings.Repeat("a", 64) + `","algorithm":"SHA-256"}`))
	g := NewGate(func() time.Time { return time.Unix(1_700_000_000, 0) })
	realm := "shellyplus1pm-c049ef8cf4e0"
	ha1 := HA1(realm, "pw")
	f.Fuzz(func(t *testing.T, raw []byte) {
		cr, err := ParseAuthObject(json.RawMessage(raw))
		if err != nil {
			if cr != nil {
				t.Fatal("credential with an error")
			}
			return
		}
		for _, s := range []string{cr.username, cr.realm, cr.nonce, cr.cnonce} {
			if len(s) > maxCredField {
				t.Fatalf("field of %d bytes accepted", len(s))
			}
		}
		if !isHex(cr.response, 64) {
			t.Fatalf("accepted response %q", cr.response)
		}
		asHex, herr := strconv.ParseUint(cr.ncText, 16, 32)
		hexOK := herr == nil && asHex == cr.nc && len(cr.ncText) <= 8 && strings.Contains(string(raw), `"`+cr.ncText+`"`)
		if cr.nc < 1 || (strconv.FormatUint(cr.nc, 10) != cr.ncText && !hexOK) {
			t.Fatalf("nc %d written as %q", cr.nc, cr.ncText)
		}
		for range 3 {
			if v := g.Check(realm, ha1, cr); v.OK {
				t.Fatal("a made-up credential was admitted")
			}
		}
		g.mu.Lock()
		n := len(g.nonces)
		g.lockedUntil = time.Time{} // keep exercising the table
		g.mu.Unlock()
		if n > MaxLiveNonces {
			t.Fatalf("%d nonces live", n)
		}
	})
}
