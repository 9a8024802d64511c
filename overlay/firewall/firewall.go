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
// It execs the iptables binaries, as the plugin's masquerade code does.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Chain is the filter chain holding the accept rules.
const Chain = "VXLAN6-FWD"

// backend is one iptables binary (one family, one of nft/legacy).
type backend struct {
	bin string // e.g. ip6tables-nft
}

// cmdTimeout bounds one iptables command (it waits up to 5s for the xtables
// lock itself): the daemon's loop runs them and must never hang on one.
const cmdTimeout = 20 * time.Second

func (b backend) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.bin, append([]string{"-w", "5", "-t", "filter"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s -t filter %s: %w: %s", b.bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

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
			res.Backends = append(res.Backends, st.b.bin)
			if changed {
				res.Changed = append(res.Changed, st.b.bin)
			}
		}
	}
	return res, errors.Join(errs...)
}

// state is a backend's filter table as `-S` prints it.
type state struct {
	b     backend
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

// chain is what `-S Chain` would print ([] when the chain is missing).
func (st state) chain() []string {
	var out []string
	for _, l := range st.lines {
		if l == "-N "+Chain || strings.HasPrefix(l, "-A "+Chain+" ") {
			out = append(out, l)
		}
	}
	return out
}

func (st state) jumps() bool { return slices.Contains(st.lines, "-A FORWARD -j "+Chain) }

func read(b backend) (state, error) {
	out, err := b.run("-S")
	if err != nil {
		return state{}, err
	}
	return state{b: b, lines: lines(out)}, nil
}

// targets returns the backends of one family that hold a drop in FORWARD,
// or the default backend when none does.
func targets(v6 bool) []state {
	base := "iptables"
	if v6 {
		base = "ip6tables"
	}
	var all, out []state
	for _, variant := range []string{base + "-nft", base + "-legacy"} {
		if _, err := exec.LookPath(variant); err != nil {
			continue
		}
		if strings.HasSuffix(variant, "-legacy") && !legacyFilterLoaded(v6) {
			// Asking iptables-legacy would create its tables, and from
			// then on iptables-nft warns about them on every listing.
			continue
		}
		st, err := read(backend{bin: variant})
		if err != nil {
			continue // e.g. no legacy tables in this kernel
		}
		all = append(all, st)
		if st.dropsForward() {
			out = append(out, st)
		}
	}
	if len(out) > 0 {
		return out
	}
	def := defaultBackend(base)
	for _, st := range all {
		if st.b == def {
			return []state{st}
		}
	}
	return []state{{b: def}}
}

// legacyFilterLoaded reports whether the legacy (x_tables) filter table of
// the family exists in this network namespace; without it nothing legacy
// drops. thread-self: the calling thread's netns, which tests switch.
func legacyFilterLoaded(v6 bool) bool {
	name := "/proc/thread-self/net/ip_tables_names"
	if v6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	b, err := os.ReadFile(name)
	return err == nil && slices.Contains(strings.Fields(string(b)), "filter")
}

var defaults sync.Map // base name -> backend

// defaultBackend is the variant the plain name runs (Debian's alternatives),
// by its own word: `iptables --version` says "(nf_tables)" or "(legacy)".
func defaultBackend(base string) backend {
	if b, ok := defaults.Load(base); ok {
		return b.(backend)
	}
	b := backend{bin: base}
	if out, err := exec.Command(base, "--version").CombinedOutput(); err == nil {
		for variant, tag := range map[string]string{"-nft": "(nf_tables)", "-legacy": "(legacy)"} {
			if strings.Contains(string(out), tag) {
				if _, err := exec.LookPath(base + variant); err == nil {
					b = backend{bin: base + variant}
				}
			}
		}
	}
	defaults.Store(base, b)
	return b
}

// wantRules are the lines `-S Chain` prints when the chain is as it should be.
func wantRules(nets []*net.IPNet) []string {
	want := []string{"-N " + Chain}
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
	b := st.b
	if st.lines == nil { // not read yet (no variant binaries)
		var err error
		if st, err = read(b); err != nil {
			return false, err
		}
	}
	changed := false
	cur := st.chain()
	if len(cur) == 0 {
		if _, err := b.run("-N", Chain); err != nil {
			return false, fmt.Errorf("create chain %s: %w", Chain, err)
		}
		cur, changed = []string{"-N " + Chain}, true
	}
	want := wantRules(nets)
	if !slices.Equal(cur, want) {
		if _, err := b.run("-F", Chain); err != nil {
			return changed, err
		}
		for _, r := range want[1:] {
			if _, err := b.run(strings.Fields(r)...); err != nil {
				return true, err
			}
		}
		changed = true
	}
	if !st.jumps() {
		// At the top: a DROP or REJECT rule in FORWARD must not come first.
		if _, err := b.run("-I", "FORWARD", "1", "-j", Chain); err != nil {
			return true, err
		}
		changed = true
	}
	return changed, nil
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Remove deletes the jump and the chain from every backend that has them
// (for --forward-rules=false after they were on). Missing pieces are fine.
func Remove() error {
	var errs []error
	for _, base := range []string{"ip6tables", "iptables"} {
		for _, variant := range []string{base + "-nft", base + "-legacy"} {
			if _, err := exec.LookPath(variant); err != nil {
				continue
			}
			if strings.HasSuffix(variant, "-legacy") && !legacyFilterLoaded(base == "ip6tables") {
				continue
			}
			b := backend{bin: variant}
			if _, err := b.run("-S", Chain); err != nil {
				continue // no chain: nothing of ours here
			}
			for {
				if _, err := b.run("-D", "FORWARD", "-j", Chain); err != nil {
					break
				}
			}
			if _, err := b.run("-F", Chain); err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := b.run("-X", Chain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
