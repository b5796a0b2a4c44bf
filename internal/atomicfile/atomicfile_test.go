package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The steps of write, in the order it must perform them.
const (
	stepCreateTemp = "CreateTemp"
	stepChmod      = "Chmod"
	stepWrite      = "Write"
	stepSync       = "Sync"
	stepClose      = "Close"
	stepRename     = "Rename"
	stepSyncDir    = "SyncDir"
)

var allSteps = []string{stepCreateTemp, stepChmod, stepWrite, stepSync, stepClose, stepRename, stepSyncDir}

var errInjected = errors.New("injected failure")

// failMode says how the failing step misbehaves.
type failMode int

const (
	// failBefore: the step has no effect and returns an error.
	failBefore failMode = iota
	// failAfter: the step takes effect, then returns an error (as a crash
	// right after it, or an error reported late, would look).
	failAfter
	// failPartial: only for Write; half the bytes reach the file.
	failPartial
)

func (m failMode) String() string {
	return [...]string{"before", "after", "partial"}[m]
}

// faultFS runs the real file operations and fails step failAt (1-based; 0
// never fails). At every step boundary it reads the target, because a crash
// there would leave exactly that on disk for the next reader.
type faultFS struct {
	t      *testing.T
	osFS   osFS
	target string
	failAt int
	mode   failMode

	steps  []string // steps attempted, in order
	failed bool
	seen   []snapshot
}

type snapshot struct {
	before  string // the step about to run
	data    []byte
	missing bool
}

func (f *faultFS) observe(step string) {
	data, err := os.ReadFile(f.target)
	if errors.Is(err, fs.ErrNotExist) {
		f.seen = append(f.seen, snapshot{before: step, missing: true})
		return
	}
	require.NoError(f.t, err)
	f.seen = append(f.seen, snapshot{before: step, data: data})
}

// step records a step and reports whether it must fail. Once one step has
// failed the rest pass through: they are write's cleanup, not its progress.
func (f *faultFS) step(name string) bool {
	if f.failed {
		return false
	}
	f.observe(name)
	f.steps = append(f.steps, name)
	if len(f.steps) == f.failAt {
		f.failed = true
		return true
	}
	return false
}

func (f *faultFS) CreateTemp(dir, pattern string) (file, error) {
	assert.Equal(f.t, filepath.Dir(f.target), dir, "temp file must be in the target's directory for rename to be atomic")
	if f.step(stepCreateTemp) {
		// os.CreateTemp returns no file on error, so failAfter is not modelled.
		return nil, errInjected
	}
	osf, err := f.osFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, f: osf}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	assert.Equal(f.t, f.target, newpath)
	if f.step(stepRename) {
		if f.mode == failAfter {
			require.NoError(f.t, f.osFS.Rename(oldpath, newpath))
		}
		return errInjected
	}
	return f.osFS.Rename(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	return f.osFS.Remove(name) // cleanup, never a step
}

func (f *faultFS) SyncDir(dir string) error {
	assert.Equal(f.t, filepath.Dir(f.target), dir)
	if f.step(stepSyncDir) {
		if f.mode == failAfter {
			require.NoError(f.t, f.osFS.SyncDir(dir))
		}
		return errInjected
	}
	return f.osFS.SyncDir(dir)
}

type faultFile struct {
	fs *faultFS
	f  file
}

func (ff *faultFile) Name() string { return ff.f.Name() }

func (ff *faultFile) Chmod(mode os.FileMode) error {
	if ff.fs.step(stepChmod) {
		if ff.fs.mode == failAfter {
			require.NoError(ff.fs.t, ff.f.Chmod(mode))
		}
		return errInjected
	}
	return ff.f.Chmod(mode)
}

func (ff *faultFile) Write(p []byte) (int, error) {
	if ff.fs.step(stepWrite) {
		switch ff.fs.mode {
		case failAfter:
			n, err := ff.f.Write(p)
			require.NoError(ff.fs.t, err)
			return n, errInjected
		case failPartial:
			n, err := ff.f.Write(p[:len(p)/2])
			require.NoError(ff.fs.t, err)
			return n, errInjected
		}
		return 0, errInjected
	}
	return ff.f.Write(p)
}

func (ff *faultFile) Sync() error {
	if ff.fs.step(stepSync) {
		if ff.fs.mode == failAfter {
			require.NoError(ff.fs.t, ff.f.Sync())
		}
		return errInjected
	}
	return ff.f.Sync()
}

func (ff *faultFile) Close() error {
	if ff.fs.step(stepClose) {
		// close(2) releases the descriptor even when it reports an error,
		// so a failing Close has closed the file in every mode.
		require.NoError(ff.fs.t, ff.f.Close())
		return errInjected
	}
	return ff.f.Close()
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteStepOrder(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "cfg.json")
	ffs := &faultFS{t: t, target: target}

	require.NoError(t, write(ffs, target, []byte("new"), 0o600))

	assert.Equal(t, allSteps, ffs.steps)
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
	assert.Equal(t, []string{"cfg.json"}, dirEntries(t, dir), "success leaves only the target")
}

func TestWriteCrashAtEveryStep(t *testing.T) {
	oldData := []byte(`{"enable":false,"server":null,"ssl_ca":"ca.pem"}` + "\n")
	newData := []byte(`{"enable":true,"server":"wss://fm.example/shelly?token=abc","ssl_ca":"*"}` + "\n")

	type tcase struct {
		failAt int
		mode   failMode
	}
	var cases []tcase
	for k, s := range allSteps {
		cases = append(cases, tcase{k + 1, failBefore})
		if s != stepCreateTemp {
			cases = append(cases, tcase{k + 1, failAfter})
		}
		if s == stepWrite {
			cases = append(cases, tcase{k + 1, failPartial})
		}
	}
	renameAt := 1 + slices.Index(allSteps, stepRename)

	for _, hadOld := range []bool{true, false} {
		for _, tc := range cases {
			name := fmt.Sprintf("old=%v/%s/%s", hadOld, allSteps[tc.failAt-1], tc.mode)
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				target := filepath.Join(dir, "cfg.json")
				if hadOld {
					require.NoError(t, os.WriteFile(target, oldData, 0o600))
				}
				ffs := &faultFS{t: t, target: target, failAt: tc.failAt, mode: tc.mode}

				err := write(ffs, target, newData, 0o600)
				require.ErrorIs(t, err, errInjected)
				require.Equal(t, allSteps[:tc.failAt], ffs.steps, "write must stop at the failed step")

				// The new contents may appear only once the rename took effect.
				renamed := tc.failAt > renameAt || (tc.failAt == renameAt && tc.mode == failAfter)

				// What a reader would find had the process died at each step:
				// the old contents until the rename, the new ones after it.
				for _, s := range ffs.seen {
					if s.before == stepSyncDir {
						assert.False(t, s.missing, "crash before %s", s.before)
						assert.Equal(t, string(newData), string(s.data), "crash before %s", s.before)
						continue
					}
					assertOld(t, s, hadOld, oldData, "crash before %s", s.before)
				}

				// What a reader finds now, after write returned the error.
				got, readErr := os.ReadFile(target)
				switch {
				case renamed:
					require.NoError(t, readErr)
					assert.Equal(t, string(newData), string(got))
				case hadOld:
					require.NoError(t, readErr)
					assert.Equal(t, string(oldData), string(got), "a failure before the rename keeps the old contents")
				default:
					assert.ErrorIs(t, readErr, fs.ErrNotExist, "a failure before the rename creates no target")
				}

				// The deferred Remove cleans up the temp file; after a
				// rename there is none left to clean.
				want := []string{"cfg.json"}
				if !hadOld && !renamed {
					want = []string{}
				}
				assert.Equal(t, want, dirEntries(t, dir), "no temp file may be left behind")
			})
		}
	}
}

// assertOld checks that a snapshot taken before the rename shows the old
// contents: the old bytes, or no file when there was none.
func assertOld(t *testing.T, s snapshot, hadOld bool, oldData []byte, msgAndArgs ...any) {
	t.Helper()
	if !hadOld {
		assert.True(t, s.missing, msgAndArgs...)
		return
	}
	if assert.False(t, s.missing, msgAndArgs...) {
		assert.Equal(t, string(oldData), string(s.data), msgAndArgs...)
	}
}

func TestWriteSnapshotsAcrossSuccess(t *testing.T) {
	// Without injected failures every intermediate state a crash could
	// expose is still the old file; only after Rename is it the new one.
	dir := t.TempDir()
	target := filepath.Join(dir, "cfg.json")
	require.NoError(t, os.WriteFile(target, []byte("old"), 0o600))
	ffs := &faultFS{t: t, target: target}

	require.NoError(t, write(ffs, target, []byte("new contents"), 0o600))

	require.Len(t, ffs.seen, len(allSteps))
	for _, s := range ffs.seen {
		want := "old"
		if s.before == stepSyncDir {
			want = "new contents"
		}
		assert.False(t, s.missing, "before %s", s.before)
		assert.Equal(t, want, string(s.data), "before %s", s.before)
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name    string
		old     []byte // nil: no file yet
		oldPerm os.FileMode
		data    []byte
		perm    os.FileMode
	}{
		{name: "create", data: []byte("hello\n"), perm: 0o600},
		{name: "create empty", data: []byte{}, perm: 0o600},
		{name: "replace longer with shorter", old: []byte("a much longer old content"), oldPerm: 0o600, data: []byte("short"), perm: 0o600},
		{name: "replace and tighten mode", old: []byte("x"), oldPerm: 0o644, data: []byte("secret token"), perm: 0o600},
		{name: "other mode", data: []byte("x"), perm: 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.old != nil {
				require.NoError(t, os.WriteFile(path, tt.old, tt.oldPerm))
				require.NoError(t, os.Chmod(path, tt.oldPerm))
			}

			require.NoError(t, Write(path, tt.data, tt.perm))

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.data, got)
			info, err := os.Stat(path)
			require.NoError(t, err)
			// Chmod is explicit, so the umask cannot widen or narrow it.
			assert.Equal(t, tt.perm, info.Mode().Perm())
			assert.Equal(t, []string{"f"}, dirEntries(t, dir))
		})
	}
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "f")
	err := Write(path, []byte("x"), 0o600)
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// TestRemoveStale: the temporary files of path that a crash left are
// removed; another path's, files of other shapes, and temporaries made
// after the first look at the directory (writes in progress) are not.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "cfg.json")
	for _, name := range []string{".cfg.json.tmp-1", ".cfg.json.tmp-4294967295", ".other.json.tmp-2", "cfg.json",
		".cfg.json.tmp-", ".cfg.json.tmp-12x", "cfg.json.tmp-3"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".cfg.json.tmp-9"), 0o700))
	require.NoError(t, RemoveStale(target))
	assert.ElementsMatch(t, []string{".other.json.tmp-2", "cfg.json", ".cfg.json.tmp-", ".cfg.json.tmp-12x", "cfg.json.tmp-3", ".cfg.json.tmp-9"},
		dirEntries(t, dir))

	// Made after the first look: this process's own, left alone.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".cfg.json.tmp-5"), nil, 0o600))
	require.NoError(t, RemoveStale(target))
	assert.Contains(t, dirEntries(t, dir), ".cfg.json.tmp-5")
	// The other path's, when its store starts.
	require.NoError(t, RemoveStale(filepath.Join(dir, "other.json")))
	assert.NotContains(t, dirEntries(t, dir), ".other.json.tmp-2")
	// A missing directory holds none.
	require.NoError(t, RemoveStale(filepath.Join(dir, "nope", "x.json")))
}
