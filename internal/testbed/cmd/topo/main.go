// Command topo builds the lab network of internal/testbed/topology for
// scripts/testbed.sh (and so `make demo`), so the scripts and the Go tests
// share one topology definition instead of the scripts rebuilding it in
// bash. It manages only namespaces and links; the scripts start etcd, the
// daemons and the containers.
//
//	topo switch SW                  create netns SW with the underlay bridge
//	topo host SW NS ID [--reverse]  create netns NS as host ID on switch SW
//	topo addr ID 1|2                print host ID's first or second address
//	topo config [--dual]            print the lab's network config JSON
//
// A failed switch or host is removed again (its netns deleted).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed/topology"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "topo:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: topo switch|host|addr|config ARGS")
	}
	cmd, args := args[0], args[1:]
	switch {
	case cmd == "switch" && len(args) == 1:
		return build(args[0], topology.Switch(args[0]))
	case cmd == "host" && (len(args) == 3 || len(args) == 4 && args[3] == "--reverse"):
		id, err := hostID(args[2])
		if err != nil {
			return err
		}
		return build(args[1], topology.Host(args[0], args[1], id, len(args) == 4))
	case cmd == "addr" && len(args) == 2 && (args[1] == "1" || args[1] == "2"):
		id, err := hostID(args[0])
		if err != nil {
			return err
		}
		addr := topology.Addr1(id)
		if args[1] == "2" {
			addr = topology.Addr2(id)
		}
		fmt.Println(addr)
		return nil
	case cmd == "config" && (len(args) == 0 || len(args) == 1 && args[0] == "--dual"):
		fmt.Println(topology.ConfigJSON(len(args) == 1))
		return nil
	}
	return fmt.Errorf("bad arguments: %s %s", cmd, strings.Join(args, " "))
}

func hostID(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id < 1 || id > 255 {
		return 0, fmt.Errorf("host id %q: want 1..255", s)
	}
	return id, nil
}

// build creates netns ns and runs steps; on failure it deletes ns again.
func build(ns string, steps []topology.Step) error {
	if err := command("ip", "netns", "add", ns); err != nil {
		return err
	}
	for _, s := range steps {
		if err := command(append([]string{"nsenter", "--net=/var/run/netns/" + s.NS, "--"}, s.Args...)...); err != nil {
			_ = command("ip", "netns", "del", ns)
			return fmt.Errorf("build %s: %w", ns, err)
		}
	}
	return nil
}

// command runs one command, bounded, with its output in the error.
func command(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
