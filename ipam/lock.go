package ipam

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fileLock is a flock(2) on one open file. flock, unlike fcntl locks, belongs
// to the open file description, so it excludes other processes and other
// Stores in this process alike, and the kernel drops it when a process dies:
// a crashed plugin can never wedge the node.
type fileLock struct {
	f *os.File
}

func openLock(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) lock(how int) error {
	for {
		err := unix.Flock(int(l.f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return fmt.Errorf("flock %s: %w", l.f.Name(), err)
			}
			return nil
		}
	}
}

func (l *fileLock) Lock() error { return l.lock(unix.LOCK_EX) }
func (l *fileLock) Unlock() error {
	return l.lock(unix.LOCK_UN)
}
func (l *fileLock) Close() error { return l.f.Close() }
