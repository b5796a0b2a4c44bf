package device_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
)

func TestRandomID(t *testing.T) {
	a, b := device.RandomID(), device.RandomID()
	assert.NotEqual(t, a, b)
	for _, id := range []string{a, b} {
		require.NoError(t, device.CheckID(id))
		assert.True(t, strings.HasPrefix(id, "shellyplus1pm-"), id)
		assert.Len(t, id, len("shellyplus1pm-")+12)
	}
}

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"shellyplus1pm-c049ef8cf4e0":   true,
		"shellypro4pm-000000000000":    true,
		"shellyplus1pm-C049EF8CF4E0":   false, // servers expect lowercase src
		"shellyplus1pm-c049ef8cf4e":    false,
		"shellyplus1pm-c049ef8cf4e0-x": false,
		"shellyplus1pm":                false,
		"-c049ef8cf4e0":                false,
		"Shelly-c049ef8cf4e0":          false,
		"":                             false,
	} {
		assert.Equal(t, ok, device.CheckID(id) == nil, id)
	}
}

func TestMACFromID(t *testing.T) {
	assert.Equal(t, "C049EF8CF4E0", device.MACFromID("shellyplus1pm-c049ef8cf4e0"))
	assert.Equal(t, "ABC", device.MACFromID("x-abc-def"), "like Home Assistant's split('-')[1]")
}

func TestDeriveID(t *testing.T) {
	const base = "shellyplus1pm-c049ef8cf4e0"
	assert.Equal(t, base, device.DeriveID(base, 0))
	assert.Equal(t, "shellyplus1pm-c049ef8cf4e1", device.DeriveID(base, 1))
	assert.Equal(t, "shellyplus1pm-c049ef8cf5e0", device.DeriveID(base, 256))
	assert.Equal(t, "shellyplus1pm-000000000001", device.DeriveID("shellyplus1pm-ffffffffffff", 2), "wraps within 48 bits")

	seen := map[string]bool{}
	for i := range 10000 {
		id := device.DeriveID(base, i)
		require.NoError(t, device.CheckID(id))
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
		// The invariant servers rely on: the MAC in src is sys.mac.
		require.Equal(t, strings.ToUpper(strings.Split(id, "-")[1]), device.MACFromID(id))
	}

	// Any name can seed a fleet.
	a, b := device.DeriveID("my lab", 0), device.DeriveID("my lab", 1)
	require.NoError(t, device.CheckID(a))
	require.NoError(t, device.CheckID(b))
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, device.DeriveID("my lab", 0), "deterministic")
}
