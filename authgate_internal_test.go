package shellyws

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A flood of bare requests and wrong credentials, from any number of
// clients, never grows the nonce table past MaxLiveNonces.
func TestAuthGateBounded(t *testing.T) {
	c := &Component{id: "shellyplus1pm-c049ef8cf4e0", opts: defaultOptions()}
	now := time.Unix(1_700_000_000, 0)
	c.opts.now = func() time.Time { return now }
	g := newAuthGate(c)
	a := PasswordAuth(c.id, "pw")
	locks := 0
	for i := range 10_000 {
		var cr *credential
		if i%2 == 1 {
			cr = &credential{username: AuthUser, realm: c.id, nonce: fmt.Sprint("guess", i), cnonce: "c",
				response: strings.Repeat("0", 64), ncText: "1", nc: 1, ha2: frameHA2}
		}
		if v := g.check(a, cr); v.locked {
			locks++
			now = now.Add(LockoutDuration)
		}
		g.mu.Lock()
		n := len(g.nonces)
		g.mu.Unlock()
		if n > MaxLiveNonces {
			t.Fatalf("after %d requests %d nonces live", i+1, n)
		}
	}
	// 5,000 failures lock out once per MaxLiveNonces of them.
	if want := 5000 / MaxLiveNonces; locks != want {
		t.Errorf("%d lockouts, want %d", locks, want)
	}
}
