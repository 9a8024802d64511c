// Package masq masquerades container traffic that leaves the cluster
// network(s), with one nat chain per attachment, by running iptables and
// ip6tables (on Debian 12 these are the nftables-backed iptables-nft).
//
// It execs the iptables binaries rather than linking an nftables library:
// the plugin is a short-lived process started for every CNI call, and those
// libraries cost milliseconds of package initialisation on every call, also
// on the calls (the vast majority) with ipMasq off.
package masq

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// ChainPrefix starts every chain this package creates.
const ChainPrefix = "VX6-"

// Chain is the nat chain of one attachment of one network.
func Chain(network, containerID, ifName string) string {
	sum := sha256.Sum256([]byte(network + "/" + containerID + "/" + ifName))
	return ChainPrefix + strings.ToUpper(hex.EncodeToString(sum[:]))[:16]
}

// comment tags the rules so GC can tell which attachment a chain belongs to.
// Network names, container IDs and interface names cannot hold spaces or
// quotes (CNI validates them), so the comment needs no escaping.
func comment(network, containerID, ifName string) string {
	return "vxlan6 " + network + " " + containerID + " " + ifName
}

func iptables(v6 bool) string {
	if v6 {
		return "ip6tables"
	}
	return "iptables"
}

func run(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s -t nat %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Setup masquerades traffic from each container address to anything outside
// its cluster network. Each element of nets is a container address with its
// cluster network's mask.
func Setup(nets []*net.IPNet, network, containerID, ifName string) error {
	chain := Chain(network, containerID, ifName)
	c := comment(network, containerID, ifName)
	for _, v6 := range []bool{true, false} {
		var mine []*net.IPNet
		for _, n := range nets {
			if (n.IP.To4() == nil) == v6 {
				mine = append(mine, n)
			}
		}
		if len(mine) == 0 {
			continue
		}
		bin := iptables(v6)
		mcast := "224.0.0.0/4"
		if v6 {
			mcast = "ff00::/8"
		}
		// A chain -N just created has no jump rule yet (iptables refuses a
		// jump to a missing chain and -X of a referenced one), so only a
		// chain that already existed needs the -C probe below: one exec
		// (tens of ms) less per family on the common ADD.
		fresh := true
		if _, err := run(bin, "-N", chain); err != nil {
			if _, ferr := run(bin, "-F", chain); ferr != nil {
				return err
			}
			fresh = false
		}
		for _, n := range mine {
			cluster := &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask}
			if _, err := run(bin, "-A", chain, "-d", cluster.String(), "-j", "ACCEPT", "-m", "comment", "--comment", c); err != nil {
				return err
			}
		}
		if _, err := run(bin, "-A", chain, "!", "-d", mcast, "-j", "MASQUERADE", "-m", "comment", "--comment", c); err != nil {
			return err
		}
		for _, n := range mine {
			rule := []string{"POSTROUTING", "-s", n.IP.String(), "-j", chain, "-m", "comment", "--comment", c}
			if !fresh {
				if _, err := run(bin, append([]string{"-C"}, rule...)...); err == nil {
					continue
				}
			}
			if _, err := run(bin, append([]string{"-A"}, rule...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Teardown removes the attachment's rules and chain in both families. What
// is already gone is not an error; a missing iptables binary is not either
// (then nothing can have been set up with it).
func Teardown(network, containerID, ifName string) error {
	chain := Chain(network, containerID, ifName)
	var errs []error
	for _, v6 := range []bool{true, false} {
		bin := iptables(v6)
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		if err := teardownChain(bin, chain); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func teardownChain(bin, chain string) error {
	// No such chain: nothing was set up in this family, and no jump rule
	// can name a missing chain, so POSTROUTING need not be read (one exec
	// less per DEL in a family the attachment never used).
	if _, err := run(bin, "-F", chain); err != nil {
		return nil
	}
	// The jump rules are deleted by their spec, not by line number: other
	// plugin processes edit POSTROUTING at the same time (parallel DELs),
	// and a number read a moment ago may by then name someone else's rule.
	out, err := run(bin, "-S", "POSTROUTING")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		f := SplitRule(line)
		if len(f) < 4 || f[0] != "-A" || f[len(f)-2] != "-j" || f[len(f)-1] != chain {
			continue
		}
		if _, err := run(bin, append([]string{"-D"}, f[1:]...)...); err != nil {
			return err
		}
	}
	_, err = run(bin, "-X", chain)
	return err
}

// SplitRule splits a line of iptables -S output into arguments: words, and
// "double-quoted strings" (with \" and \\ escapes) as one argument each,
// the way iptables quotes a comment. The daemon's chain package replays -S
// lines with it too.
func SplitRule(line string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// Attachment is what a chain's comment names.
type Attachment struct {
	ContainerID, IfName string
}

// GC tears down every chain of network whose attachment keep rejects.
func GC(network string, keep func(Attachment) bool) error {
	var errs []error
	for _, v6 := range []bool{true, false} {
		bin := iptables(v6)
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		out, err := run(bin, "-S")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(strings.ReplaceAll(line, `"`, ""))
			if len(f) < 2 || f[0] != "-A" || !strings.HasPrefix(f[1], ChainPrefix) || seen[f[1]] {
				continue
			}
			for i := 0; i+4 < len(f); i++ {
				if f[i] == "--comment" && f[i+1] == "vxlan6" && f[i+2] == network {
					seen[f[1]] = true
					if !keep(Attachment{ContainerID: f[i+3], IfName: f[i+4]}) {
						if err := teardownChain(bin, f[1]); err != nil {
							errs = append(errs, err)
						}
					}
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}
