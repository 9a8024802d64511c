// Last-resort reclaim of this boot's leftovers.
//
// A container that died without DEL or GC (the runtime crashed, Podman 4
// after an unclean stop) leaves its allocation behind in the current boot.
// Whether it is gone is the caller's judgement (Reclaimer.Gone: for the
// plugin, its netns is gone or another one is at its path, and its host veth
// is gone), so this package only offers candidates: records that name their
// netns (Owner), and only when a pool would otherwise be exhausted, or when a
// static request names an address such a leftover holds. Finding one lists
// pairs/ (O(records)), which is why it is a last resort and never on the
// usual path.
//
// Crash safety: the victim is released with Release's own steps (its
// reservations go first, its record shrinks after), and only then is the
// address reserved again, by symlink(2), which fails if anyone holds it. So at
// every instant an address has at most one owner, whatever point a crash
// interrupts.

package ipam

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// Owner says where an allocation's container lives, recorded at Allocate so
// a leftover can later be told from a live container.
// Its fields are stored in the allocation's record under these keys.
type Owner struct {
	Netns    string `json:"netns,omitempty"`    // CNI_NETNS: /run/netns/NAME or /proc/PID/ns/net
	NetnsDev uint64 `json:"netnsDev,omitempty"` // device and inode of the netns at Allocate
	NetnsIno uint64 `json:"netnsIno,omitempty"`
	HostVeth string `json:"hostVeth,omitempty"` // host end of the container's veth pair
	// NoMasq says the caller set up no masquerade rules for the container,
	// so a Reclaimer's Cleanup has none to remove. The zero value (also
	// that of records written before the key existed) means it may have.
	NoMasq bool `json:"noMasq,omitempty"`
}

// Leftover is a candidate for reclaim.
type Leftover struct {
	ContainerID string
	IfName      string
	IPs         []net.IP
	Owner       Owner
}

// Reclaimer judges and cleans up leftovers; Allocate calls it under the
// store's lock.
type Reclaimer interface {
	// Gone reports whether l's container provably no longer exists.
	Gone(l Leftover) bool
	// Cleanup removes the caller's own state for l (firewall rules, ...);
	// it runs before l's addresses are released. An error skips l.
	Cleanup(l Leftover) error
}

// reclaimWhere releases one leftover of this boot (not self) that holds an
// address satisfying want and returns that address. dryRun only reports
// whether there is one.
func (s *Store) reclaimWhere(want func(netip.Addr) bool, self string, dryRun bool) (netip.Addr, bool, error) {
	rc := s.opts.Reclaimer
	if rc == nil {
		return netip.Addr{}, false, nil
	}
	names, err := readDirNames(s.pairs)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("ipam: %w", err)
	}
	for _, n := range names {
		rec, err := s.loadRecordFile(n)
		if err != nil || rec.NetnsIno == 0 || rec.ContainerID == "" || rec.IfName == "" {
			continue // no netns recorded (or torn): never provably gone
		}
		tok := token(rec.ContainerID, rec.IfName)
		if tok == self || recordName(rec.ContainerID, rec.IfName) != n {
			continue
		}
		listed, err := parseAddrs(rec.IPs)
		if err != nil {
			continue
		}
		held, err := s.held(listed, tok)
		if err != nil {
			return netip.Addr{}, false, err
		}
		var hit netip.Addr
		for _, a := range held {
			if want(a) {
				hit = a
				break
			}
		}
		if !hit.IsValid() {
			continue
		}
		l := Leftover{ContainerID: rec.ContainerID, IfName: rec.IfName, IPs: toNetIPs(held), Owner: rec.Owner}
		if !rc.Gone(l) {
			continue
		}
		if dryRun {
			return hit, true, nil
		}
		if ok, err := s.reclaim(l); err != nil || !ok {
			if err != nil {
				return netip.Addr{}, false, err
			}
			continue
		}
		return hit, true, nil
	}
	return netip.Addr{}, false, nil
}

// reclaim cleans up after l and releases its addresses.
func (s *Store) reclaim(l Leftover) (bool, error) {
	if err := s.opts.Reclaimer.Cleanup(l); err != nil {
		slog.Warn("ipam: cannot clean up after a leftover; not reclaiming it",
			"container", l.ContainerID, "ifname", l.IfName, "err", err)
		return false, nil
	}
	at("reclaim:cleaned")
	if _, err := s.releaseLocked(l.ContainerID, l.IfName); err != nil {
		return false, fmt.Errorf("ipam: reclaim %s/%s: %w", l.ContainerID, l.IfName, err)
	}
	at("reclaim:released")
	slog.Debug("ipam: reclaimed the addresses of a container that is gone",
		"container", l.ContainerID, "ifname", l.IfName, "netns", l.Owner.Netns, "ips", l.IPs)
	return true, nil
}

func parseAddrs(vs []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(vs))
	for _, v := range vs {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
