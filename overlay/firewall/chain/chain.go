// Package chain keeps an iptables chain of vxlan6's own in one table at
// exactly the rules it should hold, jumped to from the top of a base chain
// (FORWARD, POSTROUTING). Package firewall (filter/FORWARD, per backend) and
// package egress (nat/POSTROUTING) both use it: the same read, compare,
// rewrite and remove, one place to get right.
//
// It execs the iptables binaries, as the plugin's masquerade code does:
// one place to look for what vxlan6 changed (`ip6tables -t nat -S`), and no
// nftables library fighting iptables-nft over the same tables.
package chain

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vxlan6/vxlan6/plugins/vxlan6/masq"
)

// cmdTimeout bounds one iptables command (it waits up to 5s for the xtables
// lock itself): the daemon's loop runs them and must never hang on one.
const cmdTimeout = 20 * time.Second

// Chain is a chain Name in Table, jumped to from the top of From.
type Chain struct {
	Table, Name, From string
}

// Run runs bin (iptables, ip6tables-legacy, ...) on c's table.
func (c Chain) Run(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-w", "5", "-t", c.Table}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s -t %s %s: %w: %s", bin, c.Table, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// List is the table as `bin -S` prints it, one rule a line.
func (c Chain) List(bin string) ([]string, error) {
	out, err := c.Run(bin, "-S")
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

func (c Chain) jump() string { return "-A " + c.From + " -j " + c.Name }

// Ensure brings the chain in bin to exactly rules (as -S prints them, "-A
// Name ..."), creating it if needed, and makes From jump to it first (a DROP
// or REJECT there must not come first). lines is the table as List read it.
// It reports whether anything was written; with everything in place it runs
// nothing.
func (c Chain) Ensure(bin string, lines, rules []string) (bool, error) {
	hasChain := slices.Contains(lines, "-N "+c.Name)
	var have []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+c.Name+" ") {
			have = append(have, l)
		}
	}
	sameRules := hasChain && slices.Equal(have, rules)
	hasJump := slices.Contains(lines, c.jump())
	if sameRules && hasJump {
		return false, nil
	}
	if !hasChain {
		if _, err := c.Run(bin, "-N", c.Name); err != nil {
			return false, fmt.Errorf("create chain %s: %w", c.Name, err)
		}
	} else if !sameRules {
		if _, err := c.Run(bin, "-F", c.Name); err != nil {
			return false, err
		}
	}
	if !sameRules {
		for _, r := range rules {
			if _, err := c.Run(bin, masq.SplitRule(r)...); err != nil {
				return true, err
			}
		}
	}
	if !hasJump {
		if _, err := c.Run(bin, "-I", c.From, "1", "-j", c.Name); err != nil {
			return true, err
		}
	}
	return true, nil
}

// Remove deletes every jump to the chain and the chain itself from bin, if
// lines (the table as List read it) has the chain; it reports whether it did.
func (c Chain) Remove(bin string, lines []string) (bool, error) {
	if !slices.Contains(lines, "-N "+c.Name) {
		return false, nil
	}
	for _, l := range lines {
		if l != c.jump() {
			continue
		}
		if _, err := c.Run(bin, "-D", c.From, "-j", c.Name); err != nil {
			return true, err
		}
	}
	if _, err := c.Run(bin, "-F", c.Name); err != nil {
		return true, err
	}
	_, err := c.Run(bin, "-X", c.Name)
	return true, err
}

// LegacyLoaded reports whether the legacy (x_tables) table of the family
// exists in this network namespace. Listing a legacy table creates it (and
// from then on iptables-nft warns about legacy tables on every listing), so
// a caller that only looks for its chain asks this first: no table, no
// chain. thread-self: the calling thread's netns, which tests switch.
func LegacyLoaded(v6 bool, table string) bool {
	name := "/proc/thread-self/net/ip_tables_names"
	if v6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	b, err := os.ReadFile(name)
	return err == nil && slices.Contains(strings.Fields(string(b)), table)
}

var defaults sync.Map // base name -> variant

// Default is the variant the plain name (iptables, ip6tables) runs
// (Debian's alternatives), by its own word: `iptables --version` says
// "(nf_tables)" or "(legacy)". base itself when it says neither.
func Default(base string) string {
	if v, ok := defaults.Load(base); ok {
		return v.(string)
	}
	v := base
	if out, err := exec.Command(base, "--version").CombinedOutput(); err == nil {
		for variant, tag := range map[string]string{"-nft": "(nf_tables)", "-legacy": "(legacy)"} {
			if strings.Contains(string(out), tag) {
				if _, err := exec.LookPath(base + variant); err == nil {
					v = base + variant
				}
			}
		}
	}
	defaults.Store(base, v)
	return v
}
