package ipam

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileLock is a flock(2) on one open file. flock, unlike fcntl locks, belongs
// to the open file description, so it excludes other processes and other
// Stores in this process alike, and the kernel drops it when a process dies:
// a crashed plugin can never wedge the node.
type fileLock struct {
	path string
	fd   int
}

func openLock(path string) (*fileLock, error) {
	fd, err := openFd(path, unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return &fileLock{path: path, fd: fd}, nil
}

func (l *fileLock) flock(how int) error {
	for {
		err := unix.Flock(l.fd, how)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("flock %s: %w", l.path, err)
		}
		return nil
	}
}

func (l *fileLock) Lock() error   { return l.flock(unix.LOCK_EX) }
func (l *fileLock) Unlock() error { return l.flock(unix.LOCK_UN) }
func (l *fileLock) Close() error  { return unix.Close(l.fd) }
