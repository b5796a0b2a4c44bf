package profile_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// TestForID: the model of an id is the first built-in profile, in Names
// order (the order of -profile help), with its prefix.
func TestForID(t *testing.T) {
	prefixes := profile.Prefixes()
	assert.Contains(t, prefixes, "shellyplus1pm")
	assert.Contains(t, prefixes, "ShellyWallDisplay")
	assert.Contains(t, prefixes, "st-802")
	for _, prefix := range prefixes {
		names := profile.WithPrefix(prefix)
		require.NotEmpty(t, names, prefix)
		assert.True(t, slices.IsSorted(names), prefix)
		p, err := profile.ForID(prefix + "-0a1b2c3d4e5f")
		require.NoError(t, err, prefix)
		assert.Equal(t, names[0], p.Name, prefix)
		assert.Equal(t, prefix, p.IDPrefix)
	}
	assert.Equal(t, []string{"pro4pm-gen2", "pro4pmv2-gen2"}, profile.WithPrefix("shellypro4pm"))
	assert.Equal(t, []string{profile.Default}, profile.WithPrefix("shellyplus1pm"))

	_, err := profile.ForID("shellynosuch-0a1b2c3d4e5f")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no profile has ids shellynosuch-")
	_, err = profile.ForID("shellyplus1pm-0a1b")
	assert.Error(t, err)
}

func TestCheckID(t *testing.T) {
	p, err := profile.Builtin("walldisplay-gen2")
	require.NoError(t, err)
	assert.NoError(t, p.CheckID("ShellyWallDisplay-0A1B2C3D4E5F"))
	assert.ErrorContains(t, p.CheckID("ShellyWallDisplay-0a1b2c3d4e5f"), "ShellyWallDisplay-<12 upper-case hex digits>")
	assert.ErrorContains(t, p.CheckID("shellyplus1pm-0a1b2c3d4e5f"), "does not fit model walldisplay-gen2")
	p, err = profile.Builtin("st802-gen3")
	require.NoError(t, err)
	assert.NoError(t, p.CheckID("st-802-0a1b2c3d4e5f"))
	assert.Error(t, p.CheckID("st-0a1b2c3d4e5f"))
	for _, bad := range []string{"", "x", "-0a1b2c3d4e5f", "a b-0a1b2c3d4e5f", "shellyplus1pm-0a1b2c3d4e5g"} {
		_, _, err := device.SplitID(bad)
		assert.Error(t, err, bad)
	}
}

func TestWakeupPeriod(t *testing.T) {
	for name, want := range map[string]time.Duration{
		"plusht-gen2": 2 * time.Hour, "plussmoke-gen2": 24 * time.Hour, "plus1pm-gen2": 0, "pro3em-gen2": 0,
	} {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		assert.Equal(t, want, p.WakeupPeriod(), name)
	}
}
