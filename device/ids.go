package device

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// IDPrefix is the model part of a Plus 1PM's device id, the part before the
// MAC: "shellyplus1pm-c049ef8cf4e0". It is the default profile's prefix.
const IDPrefix = "shellyplus1pm"

// RandomID returns a fresh id "shellyplus1pm-" followed by 12 random lowercase
// hex digits, so simulators started side by side do not collide.
func RandomID() string {
	return IDPrefix + "-" + RandomMAC()
}

// RandomMAC returns 12 random lowercase hex digits.
func RandomMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// RandomIDFor returns a fresh id of p's style with a random MAC.
func RandomIDFor(p *Model) string { return p.ID(RandomMAC()) }

// CheckID reports whether id looks like a real device id,
// "<model prefix>-<12 lowercase hex digits>": servers such as Home Assistant
// take src.split("-")[1].upper() as the MAC and compare it with sys.mac.
func CheckID(id string) error {
	prefix, mac, ok := strings.Cut(id, "-")
	if !ok || prefix == "" {
		return fmt.Errorf("device id %q: want <model>-<12 lowercase hex digits>, e.g. %s-c049ef8cf4e0", id, IDPrefix)
	}
	for _, c := range prefix {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("device id %q: the model part may hold only a-z and 0-9", id)
		}
	}
	if len(mac) != 12 {
		return fmt.Errorf("device id %q: want exactly 12 hex digits after the first '-'", id)
	}
	for _, c := range mac {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("device id %q: the MAC part must be lowercase hex", id)
		}
	}
	return nil
}

// MACFromID returns the MAC a server derives from id, the upper-cased part
// after the first '-' (up to a second one): "C049EF8CF4E0" for
// "shellyplus1pm-c049ef8cf4e0". The device reports the same value as sys.mac.
func MACFromID(id string) string {
	_, rest, ok := strings.Cut(id, "-")
	if !ok {
		return strings.ToUpper(id)
	}
	mac, _, _ := strings.Cut(rest, "-")
	return strings.ToUpper(mac)
}

// DeriveID returns the id of the i-th device of a fleet based on base: the
// base id's MAC plus i (modulo 2^48), keeping its model prefix, so every
// derived id is valid and distinct for 0 <= i < 2^48, and DeriveID(base, 0) is
// base itself when base passes CheckID. A base that fails CheckID is first
// turned into a valid id by hashing it, so a fleet can be derived from any
// name.
func DeriveID(base string, i int) string {
	prefix, mac := IDPrefix, uint64(0)
	if CheckID(base) == nil {
		p, hexMAC, _ := strings.Cut(base, "-")
		prefix = p
		mac, _ = strconv.ParseUint(hexMAC, 16, 64)
	} else {
		h := fnv.New64a()
		_, _ = h.Write([]byte(base))
		mac = h.Sum64()
	}
	mac = (mac + uint64(i)) & (1<<48 - 1)
	return fmt.Sprintf("%s-%012x", prefix, mac)
}

// DeriveMAC returns base (12 hex digits) plus i, modulo 2^48, as 12
// lowercase hex digits: the MAC of device i of a fleet.
func DeriveMAC(base string, i int) string {
	mac, _ := strconv.ParseUint(base, 16, 64)
	return fmt.Sprintf("%012x", (mac+uint64(i))&(1<<48-1))
}
