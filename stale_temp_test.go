package shellyws_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// crashLeftovers writes temporary files next to path as a write killed
// before its rename leaves them (os.CreateTemp's ".<name>.tmp-<digits>"),
// one of them holding an old ha1, and returns their paths.
func crashLeftovers(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for i, data := range []string{`{"enable":true,"realm":"x","ha1":"` + strings.Repeat("ab", 32) + `"}`, "", `{"enab`} {
		p := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+strings.Repeat("7", i+5))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
		out = append(out, p)
	}
	return out
}

// TestFileStoresRemoveCrashLeftovers: a component that starts with file
// stores removes the temporary files a crash left next to them, and only
// those.
func TestFileStoresRemoveCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	wsPath, authPath := filepath.Join(dir, "ws.json"), filepath.Join(dir, "auth.json")
	stale := append(crashLeftovers(t, wsPath), crashLeftovers(t, authPath)...)
	other := filepath.Join(dir, ".other.json.tmp-123")
	require.NoError(t, os.WriteFile(other, nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ws.json.tmp-1"), nil, 0o600)) // not our pattern

	_, err := shellyws.New(testDeviceID, shellyws.WithConfigStore(shellyws.NewFileStore(wsPath)),
		shellyws.WithAuthStore(shellyws.NewFileAuthStore(authPath)))
	require.NoError(t, err)
	for _, p := range stale {
		assert.NoFileExists(t, p, "a crash's temporary file is removed at start")
	}
	assert.FileExists(t, other, "another file's temporaries are not this store's")
	assert.FileExists(t, filepath.Join(dir, "ws.json.tmp-1"))
}

// TestFileStoresLeaveNoTemporaryOnError: a save whose rename fails (the
// target is a directory) reports the error and leaves no temporary file.
func TestFileStoresLeaveNoTemporaryOnError(t *testing.T) {
	dir := t.TempDir()
	wsPath, authPath := filepath.Join(dir, "ws.json"), filepath.Join(dir, "auth.json")
	for _, p := range []string{wsPath, authPath} {
		require.NoError(t, os.MkdirAll(filepath.Join(p, "x"), 0o700)) // rename(2) over a non-empty directory fails
	}
	require.Error(t, shellyws.NewFileStore(wsPath).Save(shellyws.DefaultConfig()))
	require.Error(t, shellyws.NewFileAuthStore(authPath).Save(shellyws.PasswordAuth(testDeviceID, "pw")))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"ws.json", "auth.json"}, names, "no temporary file left")
}
