package vtep

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Unusable says why a cannot be autodetected as a VTEP address, or returns ""
// when it can (see "Usable addresses" in the package comment). It looks only
// at a, so it needs no privileges.
func Unusable(a netlink.Addr) string {
	switch {
	case a.IPNet == nil || a.IP.To16() == nil:
		return "no address"
	case a.IP.To4() != nil:
		return "IPv4"
	case a.IP.IsLinkLocalUnicast():
		return "link-local"
	case a.Scope != unix.RT_SCOPE_UNIVERSE:
		return fmt.Sprintf("scope %d, not global", a.Scope)
	case a.Flags&unix.IFA_F_DADFAILED != 0:
		return "dadfailed"
	case a.Flags&unix.IFA_F_TENTATIVE != 0:
		return "tentative"
	case a.Flags&unix.IFA_F_DEPRECATED != 0 || a.PreferedLft == 0:
		return "deprecated"
	case a.Flags&unix.IFA_F_TEMPORARY != 0:
		return "temporary"
	}
	return ""
}

// UsableAddrs returns the usable addresses among addrs in the documented,
// stable order: permanent before dynamic, then numerically lowest first. The
// order of addrs (the kernel's, newest first) does not matter. addrs is not
// modified.
func UsableAddrs(addrs []netlink.Addr) []netlink.Addr {
	var out []netlink.Addr
	for _, a := range addrs {
		if Unusable(a) == "" {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, CompareAddrs)
	return out
}

// CompareAddrs is the stable address order: permanent (IFA_F_PERMANENT)
// before dynamic, then by the 16-byte address value.
func CompareAddrs(a, b netlink.Addr) int {
	pa, pb := a.Flags&unix.IFA_F_PERMANENT != 0, b.Flags&unix.IFA_F_PERMANENT != 0
	if pa != pb {
		if pa {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(a.IP.To16(), b.IP.To16()); c != 0 {
		return c
	}
	// Same address on one interface cannot happen; keep the order total anyway.
	ao, _ := a.Mask.Size()
	bo, _ := b.Mask.Size()
	return cmp.Compare(ao, bo)
}

// namedState checks an address the operator named, as found on its
// interface. An error for states that cannot work (dadfailed, tentative, not
// global scope); a warning for states that work but deserve one (deprecated,
// temporary): the operator asked for exactly this address.
func namedState(a netlink.Addr) (warning string, err error) {
	switch {
	case a.Flags&unix.IFA_F_DADFAILED != 0:
		return "", errDADFailed
	case a.Flags&unix.IFA_F_TENTATIVE != 0:
		return "", errTentative
	case a.Scope != unix.RT_SCOPE_UNIVERSE:
		return "", fmt.Errorf("%w: scope %d on its interface", errNotUnicast, a.Scope)
	case a.Flags&unix.IFA_F_DEPRECATED != 0 || a.PreferedLft == 0:
		return "deprecated (preferred lifetime over): used because it was named explicitly", nil
	case a.Flags&unix.IFA_F_TEMPORARY != 0:
		return "temporary (privacy) address that will expire: used because it was named explicitly", nil
	}
	return "", nil
}
