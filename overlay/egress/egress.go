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
// It execs the binaries through package chain, like the forward rules.
package egress

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/vxlan6/vxlan6/overlay/firewall/chain"
)

// Chain is the nat chain holding the masquerade rules.
const Chain = "VXLAN6-MASQ"

const comment = "vxlan6 pod egress masquerade"

var masq = chain.Chain{Table: "nat", Name: Chain, From: "POSTROUTING"}

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
	lines, err := masq.List(b)
	if err != nil {
		return false, err
	}
	return masq.Ensure(b, lines, want)
}

func remove(b string) (bool, error) {
	if _, err := exec.LookPath(b); err != nil {
		return false, nil // nothing can have been set up with it
	}
	if strings.HasSuffix(chain.Default(b), "-legacy") && !chain.LegacyLoaded(b == "ip6tables", "nat") {
		// No legacy nat table, no chain; listing would create the table
		// (an IPv6-only node asked every resync for IPv4).
		return false, nil
	}
	lines, err := masq.List(b)
	if err != nil {
		return false, err
	}
	return masq.Remove(b, lines)
}
