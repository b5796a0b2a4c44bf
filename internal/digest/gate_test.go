package digest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A flood of bare requests and wrong credentials, from any number of
// clients, never grows the nonce table past MaxLiveNonces.
func TestAuthGateBounded(t *testing.T) {
	id := "shellyplus1pm-c049ef8cf4e0"
	now := time.Unix(1_700_000_000, 0)
	g := NewGate(func() time.Time { return now })
	ha1 := HA1(id, "pw")
	locks := 0
	for i := range 10_000 {
		var cr *Credential
		if i%2 == 1 {
			cr = &Credential{username: User, realm: id, nonce: fmt.Sprint("guess", i), cnonce: "c",
				response: strings.Repeat("0", 64), ncText: "1", nc: 1, ha2: frameHA2}
		}
		if v := g.Check(id, ha1, cr); v.Locked {
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

// useNC against a plain set of the ncs used: every nc accepted at most
// once, any order within NCWindow of the highest, never one below.
func TestUseNCWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var e nonceEntry
		used := map[uint64]bool{}
		var highest uint64
		for range 400 {
			var nc uint64
			switch rng.IntN(4) {
			case 0:
				nc = highest + uint64(rng.IntN(3*NCWindow)) // jumps, across words too
			default:
				nc = uint64(max(0, int(highest)-rng.IntN(NCWindow+20)))
			}
			want := nc >= 1 && !used[nc] && (nc > highest || highest-nc < NCWindow)
			if got := e.useNC(nc); got != want {
				t.Fatalf("round %d: nc %d with highest %d: got %v, want %v", round, nc, highest, got, want)
			}
			if want {
				used[nc] = true
				highest = max(highest, nc)
			}
		}
	}
}

// The challenges, byte for byte as the firmware sends them.
func TestChallenges(t *testing.T) {
	const realm = "shellyplus1pm-c049ef8cf4e0"
	for _, tc := range []struct {
		stale         bool
		message, head string
	}{
		{false,
			`{"auth_type":"digest","nonce":"n0_-","nc":1,"realm":"` + realm + `","algorithm":"SHA-256"}`,
			`Digest qop="auth", realm="` + realm + `", nonce="n0_-", algorithm=SHA-256`},
		{true,
			`{"auth_type":"digest","nonce":"n0_-","nc":1,"realm":"` + realm + `","algorithm":"SHA-256","stale":true}`,
			`Digest qop="auth", realm="` + realm + `", nonce="n0_-", algorithm=SHA-256, stale=true`},
	} {
		if got := ChallengeMessage(realm, "n0_-", tc.stale); got != tc.message {
			t.Errorf("ChallengeMessage: got %s, want %s", got, tc.message)
		}
		if got := ChallengeHeader(realm, "n0_-", tc.stale); got != tc.head {
			t.Errorf("ChallengeHeader: got %s, want %s", got, tc.head)
		}
	}
	if got, want := ChallengeHeader(`a"b\c`, "n", false), `Digest qop="auth", realm="a\"b\\c", nonce="n", algorithm=SHA-256`; got != want {
		t.Errorf("quoting: got %s, want %s", got, want)
	}
}
