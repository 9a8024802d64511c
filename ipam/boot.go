// Boot generations: allocations of an earlier boot are let go in O(1).
//
// A store opened with Options.BootID keeps the boot it last served in
// <dataDir>/boot ("current\nprevious\n"). The first locked operation that
// finds another boot ID there moves ips/ and pairs/ aside into
// boots/<old boot ID>/ with two renames and starts empty ones: every
// address of the earlier boot is free at once, whatever the number of
// records, without any DEL or GC. No container of an earlier boot can still
// be running, so nothing live is touched. The moved records stay readable as
// the memory of returning containers (see remembered) until the boot after;
// older generations go to trash/, which every operation empties a bounded
// number of entries at a time.
//
// Crash safety: the boot file changes last, so an interrupted move is
// redone by the next operation (each step is skipped when already done), and
// no allocation is made before the boot file names the current boot. A store
// without a boot file (state written before boot tracking, or a fresh one) is
// taken as the current boot's: its records may belong to live containers of
// a node whose plugin was just upgraded.

package ipam

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	bootFile    = "boot"
	bootsDir    = "boots"
	trashDir    = "trash"
	trashBudget = 64 // entries removed from trash/ per store, at most
)

// ReadBootID returns the kernel's boot ID from path (normally
// /proc/sys/kernel/random/boot_id).
func ReadBootID(path string) (string, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return "", fmt.Errorf("read boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || !safeName(id) {
		return "", fmt.Errorf("read boot ID: %s holds %q, not a boot ID", path, b)
	}
	return id, nil
}

// safeName: usable as one path element.
func safeName(v string) bool {
	return len(v) <= 64 && v != "." && v != ".." && !strings.ContainsAny(v, "/\x00\n")
}

// checkBoot runs under the lock, once per Store opened with a boot ID.
func (s *Store) checkBoot() error {
	if !safeName(s.opts.BootID) {
		return fmt.Errorf("ipam: boot ID %q is not a boot ID", s.opts.BootID)
	}
	path := filepath.Join(s.dir, bootFile)
	b, err := readSmallFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Fresh or pre-boot-tracking state: the current boot's.
		return s.writeBootFile(s.opts.BootID, "")
	}
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	cur, prev, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if cur == s.opts.BootID {
		if safeName(prev) {
			s.prevBoot = prev
		}
		return nil
	}
	if !safeName(cur) || cur == "" {
		// Unreadable: we cannot tell which boot it was, so nothing is
		// moved; the file is rewritten for the current boot.
		slog.Warn("ipam: boot file is damaged; keeping the allocations as this boot's", "file", path, "content", string(b))
		return s.writeBootFile(s.opts.BootID, "")
	}
	if err := s.retireBoot(cur); err != nil {
		return err
	}
	s.prevBoot = cur
	return nil
}

// retireBoot moves the allocations of boot old aside (see the file comment).
func (s *Store) retireBoot(old string) error {
	boots := filepath.Join(s.dir, bootsDir)
	if err := os.MkdirAll(boots, 0o755); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := s.trashOldBoots(boots, old); err != nil {
		return err
	}
	gen := filepath.Join(boots, old)
	if err := os.Mkdir(gen, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("ipam: %w", err)
	}
	for _, d := range []string{s.ips, s.pairs} {
		dst := filepath.Join(gen, filepath.Base(d))
		if _, err := os.Lstat(dst); err == nil {
			continue // moved by an interrupted earlier attempt
		}
		if err := os.Rename(d, dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ipam: retire allocations of boot %s: %w", old, err)
		}
		at("boot:moved-" + filepath.Base(d))
	}
	for _, d := range []string{s.ips, s.pairs} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("ipam: %w", err)
		}
	}
	at("boot:dirs-made")
	if err := s.writeBootFile(s.opts.BootID, old); err != nil {
		return err
	}
	at("boot:file-written")
	slog.Debug("ipam: released the allocations of an earlier boot", "boot", old, "moved-to", gen)
	return nil
}

// trashOldBoots moves every generation but keep into trash/.
func (s *Store) trashOldBoots(boots, keep string) error {
	names, err := readDirNames(boots)
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	for _, n := range names {
		if n == keep {
			continue
		}
		trash := filepath.Join(s.dir, trashDir)
		if err := os.MkdirAll(trash, 0o755); err != nil {
			return fmt.Errorf("ipam: %w", err)
		}
		s.tmpSeq++
		dst := filepath.Join(trash, fmt.Sprintf("%s.%d.%d", n, os.Getpid(), s.tmpSeq))
		if err := os.Rename(filepath.Join(boots, n), dst); err != nil {
			return fmt.Errorf("ipam: %w", err)
		}
	}
	return nil
}

// writeBootFile replaces the boot file and makes it durable: a boot file
// lost to power loss after allocations were made under it would make the
// next boot take them for the current boot's (a leak, never a double use).
func (s *Store) writeBootFile(cur, prev string) error {
	content := cur + "\n"
	if prev != "" {
		content += prev + "\n"
	}
	if err := s.replaceFile(filepath.Join(s.dir, bootFile), []byte(content)); err != nil {
		return fmt.Errorf("ipam: write boot file: %w", err)
	}
	return s.sync(s.dir)
}

// prevPairs is the record dir of the previous boot, or "".
func (s *Store) prevPairs() string {
	if s.prevBoot == "" {
		return ""
	}
	return filepath.Join(s.dir, bootsDir, s.prevBoot, "pairs")
}

// pruneTrash removes up to trashBudget entries of trash/: generations two
// boots old. Bounded so that no call pays for the number of records.
func (s *Store) pruneTrash() {
	budget := trashBudget
	trash := filepath.Join(s.dir, trashDir)
	if removeSome(trash, &budget) {
		_ = unix.Rmdir(trash)
	}
}

// removeSome removes entries under dir depth first until budget runs out
// and reports whether dir is now empty.
func removeSome(dir string, budget *int) bool {
	for range 4 {
		names, err := readSomeNames(dir)
		if err != nil {
			return false
		}
		if len(names) == 0 {
			return true
		}
		for _, n := range names {
			if *budget <= 0 {
				return false
			}
			p := filepath.Join(dir, n)
			err := unix.Unlink(p)
			if err == unix.EISDIR || err == unix.EPERM {
				if !removeSome(p, budget) {
					return false
				}
				err = unix.Rmdir(p)
			}
			if err != nil && err != unix.ENOENT {
				slog.Warn("ipam: cannot remove an old boot's state", "path", p, "err", err)
				return false
			}
			*budget--
		}
	}
	return false
}

// readSomeNames returns the names of one getdents batch of dir: O(1) in the
// size of dir.
func readSomeNames(dir string) ([]string, error) {
	fd, err := openFd(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return nil, err
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		return names, nil
	}
}
