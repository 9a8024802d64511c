// Last-address memory: a returning (container ID, ifname) gets the
// addresses it had last, when they are still free.
//
// Two sources, both read only when a pair without a record allocates:
//
//   - last/<bucket>: written by Release, a symlink "token boot addr,addr"
//     replaced atomically (symlink in tmp/, rename). The bucket is the first
//     three hex digits of the pair's token, so the memory is a fixed table of
//     at most 4096 entries, read and written in O(1): a later release in the
//     same bucket evicts an earlier one, which then just gets the usual next
//     address.
//   - the previous boot's record of the pair (boots/<prev>/pairs/), for a
//     container that was running when the node went down and comes back
//     under the same ID without having been DELeted.
//
// A remembered address is a preference only: it is taken when it is
// assignable in a current subnet and nobody holds it.

package ipam

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const lastDir = "last"

func (s *Store) lastPath(tok string) string { return filepath.Join(s.dir, lastDir, tok[:3]) }

// remember records addrs as the pair's last addresses. A hint: failures are
// ignored.
func (s *Store) remember(tok string, addrs []netip.Addr) {
	if len(addrs) == 0 {
		return
	}
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	content := tok + " " + bootTag(s.opts.BootID) + " " + strings.Join(parts, ",")
	s.tmpSeq++
	tmp := filepath.Join(s.tmp, fmt.Sprintf("%d.%d", os.Getpid(), s.tmpSeq))
	if err := unix.Symlink(content, tmp); err != nil {
		return
	}
	dst := s.lastPath(tok)
	err := unix.Rename(tmp, dst)
	if err == unix.ENOENT {
		// last/ is made on first use, not by Open (one stat less per exec).
		if os.Mkdir(filepath.Dir(dst), 0o755) == nil {
			err = unix.Rename(tmp, dst)
		}
	}
	if err != nil {
		_ = unix.Unlink(tmp)
	}
}

// bootTag is what a memory entry says of its boot: enough to tell this
// boot's entries from older ones.
func bootTag(boot string) string {
	if boot == "" {
		return "-"
	}
	return boot[:min(len(boot), 8)]
}

// remembered returns the pair's last addresses, most recent source first.
func (s *Store) remembered(id, ifname, tok string) []netip.Addr {
	var last []netip.Addr
	thisBoot := false
	if v, err := os.Readlink(s.lastPath(tok)); err == nil {
		f := strings.Fields(v)
		if len(f) == 3 && f[0] == tok {
			thisBoot = f[1] == bootTag(s.opts.BootID) && s.opts.BootID != ""
			for _, p := range strings.Split(f[2], ",") {
				if a, err := netip.ParseAddr(p); err == nil {
					last = append(last, a)
				}
			}
		}
	}
	var prev []netip.Addr
	if dir := s.prevPairs(); dir != "" {
		prev, _, _, _ = s.readRecordIn(dir, id, ifname)
	}
	if thisBoot {
		return append(last, prev...)
	}
	return append(prev, last...)
}

// freeFrom returns the first of addrs that is assignable in pl and held by
// nobody, or the zero Addr.
func (s *Store) freeFrom(pl pool, addrs []netip.Addr) (netip.Addr, error) {
	for _, a := range addrs {
		if !pl.assignable(a) {
			continue
		}
		if _, held, err := s.owner(a); err != nil {
			return netip.Addr{}, err
		} else if !held {
			return a, nil
		}
	}
	return netip.Addr{}, nil
}
