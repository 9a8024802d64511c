// Package firewall keeps forwarded pod traffic accepted on hosts whose
// firewall drops forwarded packets (Docker and firewalld leave the FORWARD
// policy at DROP), like flannel's --iptables-forward-rules.
//
// An accept rule in a table of our own would not help: a packet must pass
// every base chain hooked at FORWARD, and a DROP in another one wins. So the
// rules go where the drop is: chain VXLAN6-FWD in the filter table of the
// iptables backend that holds it (iptables-nft or iptables-legacy; both when
// both do), jumped to from the top of its FORWARD chain. When no backend
// drops, the system's default one gets the rules anyway, so that a firewall
// started later is covered from the start.
//
// It execs the iptables binaries through package chain, as package egress
// does.
package firewall

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"

	"github.com/vxlan6/vxlan6/overlay/firewall/chain"
)

// Chain is the filter chain holding the accept rules.
const Chain = "VXLAN6-FWD"

var fwd = chain.Chain{Table: "filter", Name: Chain, From: "FORWARD"}

// Result says what Ensure did, for the log.
type Result struct {
	Backends []string // binaries whose FORWARD chain now jumps to Chain
	Changed  []string // the ones where something had to be (re)written
}

// Ensure makes every backend that drops forwarded traffic (or the default
// one) accept traffic from and to networks, the IPv6 ones through
// ip6tables and the IPv4 ones through iptables. It is idempotent and cheap
// when all is in place (one `-S` per installed backend), so the daemon runs
// it on every resync: a firewall reload drops our rules.
func Ensure(networks []*net.IPNet) (Result, error) {
	var res Result
	var errs []error
	for _, v6 := range []bool{true, false} {
		var nets []*net.IPNet
		for _, n := range networks {
			if n != nil && (n.IP.To4() == nil) == v6 {
				nets = append(nets, n)
			}
		}
		if len(nets) == 0 {
			continue
		}
		for _, st := range targets(v6) {
			changed, err := ensureIn(st, nets)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res.Backends = append(res.Backends, st.bin)
			if changed {
				res.Changed = append(res.Changed, st.bin)
			}
		}
	}
	return res, errors.Join(errs...)
}

// state is a backend's filter table as `-S` prints it. A backend is one
// iptables binary: one family, one of nft/legacy (e.g. ip6tables-nft).
type state struct {
	bin   string
	lines []string
}

func (st state) dropsForward() bool {
	for _, line := range st.lines {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "-P" && f[1] == "FORWARD" && f[2] == "DROP":
			return true
		// firewalld's iptables backend ends FORWARD with a REJECT.
		case len(f) > 2 && f[0] == "-A" && f[1] == "FORWARD" && (slices.Contains(f, "DROP") || slices.Contains(f, "REJECT")):
			return true
		}
	}
	return false
}

func read(bin string) (state, error) {
	lines, err := fwd.List(bin)
	if err != nil {
		return state{}, err
	}
	return state{bin: bin, lines: lines}, nil
}

// targets returns the backends of one family that hold a drop in FORWARD,
// or the default backend when none does, or none when the host has no
// iptables binary of the family.
func targets(v6 bool) []state {
	base := "iptables"
	if v6 {
		base = "ip6tables"
	}
	all := installed(v6)
	var out []state
	for _, st := range all {
		if st.dropsForward() {
			out = append(out, st)
		}
	}
	if len(out) > 0 {
		return out
	}
	if len(all) == 0 {
		if _, err := exec.LookPath(base); err != nil {
			// No iptables of this family on this host (an nftables-only
			// install): nothing of it drops, and there is nothing to run.
			return nil
		}
	}
	// The variant the plain name runs.
	def := chain.Default(base)
	for _, st := range all {
		if st.bin == def {
			return []state{st}
		}
	}
	return []state{{bin: def}}
}

// wantRules are the chain's rules as `-S` prints them.
func wantRules(nets []*net.IPNet) []string {
	var want []string
	for _, n := range nets {
		want = append(want,
			fmt.Sprintf("-A %s -s %s -j ACCEPT", Chain, n),
			fmt.Sprintf("-A %s -d %s -j ACCEPT", Chain, n))
	}
	return want
}

// ensureIn brings Chain in st's backend to exactly wantRules and makes
// FORWARD jump to it first. It reports whether anything was written.
func ensureIn(st state, nets []*net.IPNet) (bool, error) {
	if st.lines == nil { // not read yet (no variant binaries)
		var err error
		if st, err = read(st.bin); err != nil {
			return false, err
		}
	}
	return fwd.Ensure(st.bin, st.lines, wantRules(nets))
}

// Remove deletes the jump and the chain from every backend that has them
// (for --forward-rules=false after they were on). Missing pieces are fine.
func Remove() error {
	var errs []error
	for _, v6 := range []bool{true, false} {
		for _, st := range installed(v6) {
			if _, err := fwd.Remove(st.bin, st.lines); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// installed reads the filter table of each backend of one family that is
// installed and has its tables: the nft one, and the legacy one once its
// filter table exists (asking iptables-legacy would create its tables, and
// from then on iptables-nft warns about them on every listing).
func installed(v6 bool) []state {
	base := "iptables"
	if v6 {
		base = "ip6tables"
	}
	var all []state
	for _, variant := range []string{base + "-nft", base + "-legacy"} {
		if _, err := exec.LookPath(variant); err != nil {
			continue
		}
		if strings.HasSuffix(variant, "-legacy") && !chain.LegacyLoaded(v6, "filter") {
			continue
		}
		st, err := read(variant)
		if err != nil {
			continue // e.g. no legacy tables in this kernel
		}
		all = append(all, st)
	}
	return all
}
