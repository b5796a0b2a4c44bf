package profile_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device/profile"
)

// fixturesEnv names the shared fixtures' device folder when it is not in
// an ancestor of the repository (shared/fixtures/devices).
const fixturesEnv = "SHELLYWS_FIXTURES"

// fixturesDir returns the shared fixtures' device folder: $SHELLYWS_FIXTURES,
// or shared/fixtures/devices in the nearest ancestor of this package that
// has one; "" when there is none (a checkout outside the workspace).
func fixturesDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(fixturesEnv); dir != "" {
		return dir
	}
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	for {
		cand := filepath.Join(dir, "shared", "fixtures", "devices")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// TestEmbeddedWifiConfigIsObject: Shelly.GetConfig's wifi is an object in
// every embedded dump that has it, as every real device answers; the
// publishers' anonymisers had turned it into the SSID string in ten of them
// (dumps/README.md, "Corrections").
func TestEmbeddedWifiConfigIsObject(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("dumps", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, len(profile.Names()))
	with := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var dump struct {
			Config map[string]json.RawMessage `json:"Shelly.GetConfig"`
		}
		require.NoError(t, json.Unmarshal(data, &dump), f)
		raw, ok := dump.Config["wifi"]
		if !ok {
			continue
		}
		with++
		var wifi map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &wifi), "%s: config wifi is %s, not an object", f, raw)
		require.NotNil(t, wifi, "%s: config wifi is null", f)
		assert.Contains(t, wifi, "sta", f)

		p, err := profile.Builtin(filepath.Base(f[:len(f)-len(".json")]))
		require.NoError(t, err)
		assert.NotNil(t, p.Config.Object("wifi"), "%s: the parsed profile's wifi", f)
	}
	assert.Greater(t, with, 70, "most dumps have a wifi config")
}

// TestEmbeddedDumpsEqualFixtures: the embedded dumps and their README are
// byte-for-byte the complete dumps of the shared fixtures (partial/ left
// out), corrections included. Outside the workspace, set
// SHELLYWS_FIXTURES to the fixtures' devices folder to run it.
func TestEmbeddedDumpsEqualFixtures(t *testing.T) {
	dir := fixturesDir(t)
	if dir == "" {
		t.Skipf("no shared/fixtures/devices above this package and %s unset: nothing to compare with", fixturesEnv)
	}
	want, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, want, dir)
	got, err := filepath.Glob(filepath.Join("dumps", "*.json"))
	require.NoError(t, err)
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		slices.Sort(out)
		return out
	}
	require.Equal(t, base(want), base(got), "the same dumps")
	for _, name := range append(base(want), "README.md") {
		fixture, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		embedded, err := os.ReadFile(filepath.Join("dumps", name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(fixture, embedded), "dumps/%s differs from %s", name, filepath.Join(dir, name))
	}
}
