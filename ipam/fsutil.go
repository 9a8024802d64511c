// Small file primitives on raw file descriptors. os.Open costs five extra
// system calls per file here (it tries to register every descriptor with
// the network poller, which refuses regular files), and a plugin exec opens
// about ten files, so the hot path goes straight to the kernel.

package ipam

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

func pathErr(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func openFd(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, pathErr("open", path, err)
		}
		return fd, nil
	}
}

// readSmallFile reads a file of a few hundred bytes.
func readSmallFile(path string) ([]byte, error) {
	fd, err := openFd(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, pathErr("read", path, err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// writeFileAt writes data at offset 0 of path, creating it if needed and
// never truncating it.
func writeFileAt(path string, data []byte, flags int) error {
	fd, err := openFd(path, unix.O_WRONLY|unix.O_CREAT|flags, 0o644)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); {
		n, err := unix.Pwrite(fd, data[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return pathErr("write", path, err)
		}
		off += n
	}
	if err := unix.Close(fd); err != nil {
		return pathErr("close", path, err)
	}
	return nil
}

// fsyncFd is unix.Fsync; tests replace it to see a failing disk.
var fsyncFd = unix.Fsync

func fsyncPath(path string) error {
	fd, err := openFd(path, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		err := fsyncFd(fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathErr("fsync", path, err)
		}
		return nil
	}
}

func readDirNames(dir string) ([]string, error) {
	fd, err := openFd(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, pathErr("getdents", dir, err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
