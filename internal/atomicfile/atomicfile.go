// Package atomicfile replaces a file's contents so that a crash at any
// instant leaves either the old or the new contents at the path.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// fsys is the set of file operations Write performs, in order. Tests swap it
// to stop a write after any step, as a crash or power cut would.
type fsys interface {
	CreateTemp(dir, pattern string) (file, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

type file interface {
	Name() string
	Write(p []byte) (int, error)
	Chmod(mode os.FileMode) error
	Sync() error
	Close() error
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (file, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Write atomically replaces the contents of path with data: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory so the rename itself survives a power cut.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(osFS{}, path, data, perm)
}

func write(fs fsys, path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := fs.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			fs.Remove(tmp) // best effort; should it fail, RemoveStale gets it at the next start
		}
	}()
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = fs.Rename(tmp, path); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

// tempPrefix is how the temporary files of path start; os.CreateTemp
// appends random digits.
func tempPrefix(path string) string { return "." + filepath.Base(path) + tempMark }

const tempMark = ".tmp-"

// stale remembers, per directory, the temporary files found there the
// first time RemoveStale looked, by the base name of their target. Only a
// process that died before its rename leaves them; listing each directory
// once keeps a fleet of stores in one directory from listing it once per
// store.
var stale struct {
	mu   sync.Mutex
	dirs map[string]map[string][]string
}

// RemoveStale removes the temporary files a Write of path left behind when
// the process died before its rename, some of which may hold old secrets.
// A file store calls it when it starts (loads); temporary files of other
// paths are left alone, and so are files created after this process first
// looked at the directory, which are its own writes in progress. Files
// already gone are no error.
func RemoveStale(path string) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	stale.mu.Lock()
	byBase, ok := stale.dirs[dir]
	if !ok {
		var err error
		if byBase, err = listStale(dir); err != nil {
			stale.mu.Unlock()
			return err
		}
		if stale.dirs == nil {
			stale.dirs = map[string]map[string][]string{}
		}
		stale.dirs[dir] = byBase
	}
	names := byBase[base]
	delete(byBase, base)
	stale.mu.Unlock()
	var errs []error
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listStale finds ".<base>.tmp-<digits>" in dir, by base. A directory that
// does not exist holds none.
func listStale(dir string) (map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	byBase := map[string][]string{}
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, tempMark)
		if !strings.HasPrefix(name, ".") || i < 1 || !allDigits(name[i+len(tempMark):]) || e.IsDir() {
			continue
		}
		base := name[1:i]
		byBase[base] = append(byBase[base], name)
	}
	return byBase, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
