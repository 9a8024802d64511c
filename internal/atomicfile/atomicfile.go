// Package atomicfile replaces files so that a reader, or the host after a
// crash, sees either the old content or the new, never half of it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data (mode perm): a temp file in the same
// directory (created with it if need be), fsync, rename over path, fsync of
// the directory so the rename itself survives a power loss. The error is
// the failing step's, for the caller to wrap with what the file is.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
