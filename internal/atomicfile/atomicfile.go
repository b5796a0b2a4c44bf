// Package atomicfile replaces a file's contents so that a crash at any
// instant leaves either the old or the new contents at the path.
package atomicfile

import (
	"os"
	"path/filepath"
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
	f, err := fs.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			fs.Remove(tmp) // best effort; a leftover temp file is harmless
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
