package profile_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// TestBuiltinsAreTheCompleteDumps: every complete dump of the shared
// fixtures is embedded, none of the partial ones, with the README beside
// them.
func TestBuiltinsAreTheCompleteDumps(t *testing.T) {
	var want []string
	if dir := fixturesDir(t); dir != "" {
		fixtures, err := filepath.Glob(filepath.Join(dir, "*.json"))
		require.NoError(t, err)
		for _, f := range fixtures {
			want = append(want, strings.TrimSuffix(filepath.Base(f), ".json"))
		}
		slices.Sort(want)
	}
	if len(want) == 0 {
		// Outside this workspace the fixtures are not beside the repo;
		// the README still names every embedded dump.
		for _, n := range profile.Names() {
			assert.Contains(t, profile.Notes(), "| "+n+".json |")
		}
	} else {
		assert.Equal(t, want, profile.Names())
	}
	assert.Len(t, profile.Names(), 77)
	assert.Contains(t, profile.Notes(), "Apache-2.0")
	for _, n := range profile.Names() {
		assert.NotContains(t, n, "partial")
		p, err := profile.Builtin(n)
		require.NoError(t, err, n)
		assert.NotEmpty(t, p.Model, n)
		assert.NotEmpty(t, p.IDPrefix, n)
		assert.Len(t, p.DumpMAC, 12, n)
		assert.Contains(t, p.Keys, "sys", n)
		again, err := profile.Builtin(n)
		require.NoError(t, err)
		assert.Same(t, p, again, "parsed once, shared")
	}
}

func TestParseKeepsOrderAndLiterals(t *testing.T) {
	p, err := device.ParseModel("t", []byte(`{"source":"x",
		"Shelly.GetDeviceInfo":{"name":null,"id":"shellyx-aabbccddeeff","mac":"AABBCCDDEEFF","gen":2},
		"Shelly.GetConfig":{"sys":{"cfg_rev":3}},
		"Shelly.GetStatus":{"z":{"v":60.0},"a":[1,2.50],"sys":{"mac":"AABBCCDDEEFF"}},
		"Shelly.ListMethods":{"methods":["A.B"]}}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"z", "a", "sys"}, p.Status.Keys)
	assert.Equal(t, []string{"A.B"}, p.Methods)
	assert.Equal(t, "shellyx", p.IDPrefix)
	assert.Equal(t, 2, p.Gen)
	out, err := jsonv.AppendJSON(nil, p.Status, p.DumpMAC, "0A1B2C3D4E5F", nil)
	require.NoError(t, err)
	assert.Equal(t, `{"z":{"v":60.0},"a":[1,2.50],"sys":{"mac":"0A1B2C3D4E5F"}}`, string(out))
	out, err = jsonv.AppendJSON(nil, p.Info, p.DumpMAC, "0A1B2C3D4E5F",
		jsonv.Patch{{Key: "gen", Val: 3}, {Key: "extra", Val: jsonv.Patch{{Key: "k", Val: true}}}})
	require.NoError(t, err)
	assert.Equal(t, `{"name":null,"id":"shellyx-0a1b2c3d4e5f","mac":"0A1B2C3D4E5F","gen":3,"extra":{"k":true}}`, string(out))
}

func TestParseErrors(t *testing.T) {
	for doc, msg := range map[string]string{
		`nope`: "not valid JSON",
		`[]`:   "not a JSON object",
		`{"Shelly.GetDeviceInfo":{"id":"x-aabbccddeeff"},"Shelly.GetConfig":{}}`:                                                            "no Shelly.GetStatus object",
		`{"Shelly.GetDeviceInfo":{"id":"shellyx"},"Shelly.GetConfig":{},"Shelly.GetStatus":{}}`:                                             "is not <prefix>-<12 hex digits>",
		`{"Shelly.GetDeviceInfo":{"id":"x-aabbccddeeff","mac":"001122334455"},"Shelly.GetConfig":{},"Shelly.GetStatus":{}}`:                 "is not the MAC",
		`{"Shelly.GetDeviceInfo":{"id":"x-aabbccddeeff"},"Shelly.GetConfig":{},"Shelly.GetStatus":{},"Shelly.ListMethods":{"methods":[1]}}`: "not a string",
		`{} {}`: "data after",
	} {
		_, err := device.ParseModel("t", []byte(doc))
		require.Error(t, err, doc)
		assert.Contains(t, err.Error(), msg, doc)
	}
	_, err := profile.Lookup("no-such-gen9")
	assert.ErrorContains(t, err, `no built-in profile "no-such-gen9"`)
	_, err = profile.Lookup(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestRenderKeepsCase(t *testing.T) {
	const dump = "543204547478" // digits only: case comes from the string
	assert.Equal(t, "shelly1minig3-0a1b2c3d4e5f", jsonv.Render("shelly1minig3-543204547478", dump, "0A1B2C3D4E5F"))
	assert.Equal(t, "0A1B2C3D4E5F", jsonv.Render("543204547478", dump, "0A1B2C3D4E5F"))
	assert.Equal(t, "ShellyWallDisplay-0A1B2C3D4E5F", jsonv.Render("ShellyWallDisplay-AABBCCDDEEFF", "AABBCCDDEEFF", "0A1B2C3D4E5F"))
	assert.Equal(t, "a/0a1b2c3d4e5f/b/0A1B2C3D4E5F", jsonv.Render("a/aabbccddeeff/b/AABBCCDDEEFF", "AABBCCDDEEFF", "0A1B2C3D4E5F"))
}
