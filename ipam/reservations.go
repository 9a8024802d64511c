// Reservations: ips/<addr> is a symlink to the owner token. Its existence is
// the one truth about whether an address is taken.

package ipam

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
)

func (s *Store) ipPath(a netip.Addr) string { return filepath.Join(s.ips, a.String()) }

// owner returns the token a's reservation points at, if it is reserved.
func (s *Store) owner(a netip.Addr) (string, bool, error) {
	t, err := os.Readlink(s.ipPath(a))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if errors.Is(err, syscall.EINVAL) {
		// Something that is not a symlink occupies the name (left by hand
		// or by another tool): held by nobody we know, never handed out,
		// never removed.
		return "", true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("ipam: read reservation of %s: %w", a, err)
	}
	return t, true, nil
}

func (s *Store) reserve(a netip.Addr, tok string) error {
	if err := os.Symlink(tok, s.ipPath(a)); err != nil {
		return fmt.Errorf("ipam: reserve %s: %w", a, err)
	}
	return nil
}

// unreserve removes a's reservation if it is tok's.
func (s *Store) unreserve(a netip.Addr, tok string) error {
	o, ok, err := s.owner(a)
	if err != nil || !ok || o != tok {
		return err
	}
	if err := os.Remove(s.ipPath(a)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: release %s: %w", a, err)
	}
	return nil
}
