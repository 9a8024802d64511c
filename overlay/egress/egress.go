// Package egress masquerades pod traffic that leaves the cluster, once per
// node, like flannel's --ip-masq: packets from a pod network to anything
// outside the cluster network(s) leave with the node's address, so a pod on
// a ULA (fd10:244::/48, routed nowhere) or a private IPv4 network reaches
// the outside world and the replies find their way back.
//
// Rules live in the nat table, chain VXLAN6-MASQ, jumped to from the top
// of POSTROUTING, through iptables and ip6tables (the system's default
// backend: iptables-nft on Debian 12), the tools the plugin's per-attachment
// ipMasq (chains VX6-*) and the daemon's forward rules use too. Both may
// be active: their MASQUERADE rules agree.
//
// It execs the binaries, like the plugin and the forward rules: one place
// to look for what vxlan6 changed (`ip6tables -t nat -S`), and no nftables
// library that fights iptables-nft over the same tables.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Chain is the nat chain holding the masquerade rules.
const Chain = "VXLAN6-MASQ"

const comment = "vxlan6 pod egress masquerade"

// cmdTimeout bounds one iptables call; the daemon's loop runs them.
const cmdTimeout = 20 * time.Second

func run(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-w", "5", "-t", "nat"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s -t nat %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func bin(v6 bool) string {
	if v6 {
		return "ip6tables"
	}
	return "iptables"
}

// rules are the chain's rules as `-S` prints them, for the pod networks of
// one family: traffic between pod networks is left alone, as is multicast;
// everything else from a pod network is masqueraded.
func rules(nets []*net.IPNet, v6 bool) []string {
	mcast := "224.0.0.0/4"
	if v6 {
		mcast = "ff00::/8"
	}
	c := fmt.Sprintf("-m comment --comment %q", comment)
	var out []string
	for _, src := range nets {
		for _, dst := range nets {
			out = append(out, fmt.Sprintf("-A %s -s %s -d %s %s -j RETURN", Chain, src, dst, c))
		}
	}
	for _, src := range nets {
		out = append(out, fmt.Sprintf("-A %s -s %s -d %s %s -j RETURN", Chain, src, mcast, c))
		out = append(out, fmt.Sprintf("-A %s -s %s %s -j MASQUERADE", Chain, src, c))
	}
	return out
}

const jump = "-A POSTROUTING -j " + Chain

// Ensure installs the rules for networks (both families; a family without
// a network gets its chain removed). It is idempotent and cheap when all is
// in place (one -S per family), so the daemon runs it on every resync: a
// firewall reload drops the rules. It reports whether it changed anything.
func Ensure(networks []*net.IPNet) (bool, error) {
	changed := false
	var errs []error
	for _, v6 := range []bool{true, false} {
		var nets []*net.IPNet
		for _, n := range networks {
			if n != nil && (n.IP.To4() == nil) == v6 {
				nets = append(nets, &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask})
			}
		}
		var c bool
		var err error
		if len(nets) == 0 {
			c, err = remove(bin(v6))
		} else {
			c, err = ensure(bin(v6), rules(nets, v6))
		}
		changed = changed || c
		errs = append(errs, err)
	}
	return changed, errors.Join(errs...)
}

// Remove deletes the chain and its jump in both families (--ip-masq=false).
func Remove() (bool, error) {
	c6, err6 := remove(bin(true))
	c4, err4 := remove(bin(false))
	return c6 || c4, errors.Join(err6, err4)
}

func ensure(b string, want []string) (bool, error) {
	out, err := run(b, "-S")
	if err != nil {
		return false, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var have []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+Chain+" ") {
			have = append(have, l)
		}
	}
	hasChain := slices.Contains(lines, "-N "+Chain)
	if hasChain && slices.Equal(have, want) && slices.Contains(lines, jump) {
		return false, nil
	}
	if !hasChain {
		if _, err := run(b, "-N", Chain); err != nil {
			return false, err
		}
	} else if !slices.Equal(have, want) {
		if _, err := run(b, "-F", Chain); err != nil {
			return false, err
		}
	}
	if !hasChain || !slices.Equal(have, want) {
		for _, r := range want {
			if _, err := run(b, splitRule(r)...); err != nil {
				return true, err
			}
		}
	}
	if !slices.Contains(lines, jump) {
		if _, err := run(b, "-I", "POSTROUTING", "1", "-j", Chain); err != nil {
			return true, err
		}
	}
	return true, nil
}

func remove(b string) (bool, error) {
	if _, err := exec.LookPath(b); err != nil {
		return false, nil // nothing can have been set up with it
	}
	out, err := run(b, "-S")
	if err != nil {
		return false, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !slices.Contains(lines, "-N "+Chain) {
		return false, nil
	}
	for slices.Contains(lines, jump) {
		if _, err := run(b, "-D", "POSTROUTING", "-j", Chain); err != nil {
			return true, err
		}
		lines = slices.DeleteFunc(lines, func(l string) bool { return l == jump })
	}
	if _, err := run(b, "-F", Chain); err != nil {
		return true, err
	}
	_, err = run(b, "-X", Chain)
	return true, err
}

// splitRule turns a -S line into arguments, honouring the double quotes
// -S puts around a comment with spaces.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQ, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQ, have = !inQ, true
		case r == ' ' && !inQ:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}
