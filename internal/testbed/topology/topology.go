// Package topology is the one definition of the vxlan6 lab's network: a
// "switch" namespace holding the IPv6-only underlay bridge and router
// address, and hosts hanging off it, each with two global addresses on its
// uplink and a default route. The Go harness (internal/testbed) and the
// scripts (scripts/testbed.sh through cmd/topo, so `make demo` too) build
// their hosts from these steps, so both labs are the same network.
//
// It says what to run, not how: a Step is one command inside one network
// namespace; the caller creates and deletes the namespaces (the Go harness
// ties them to the test's cleanup, cmd/topo to the script's state).
package topology

import (
	"encoding/json"
	"fmt"
	"net"
)

// The lab's names and the defaults of its network config.
const (
	// Uplink is every host's underlay interface.
	Uplink = "eth0"
	// SwitchBridge is the underlay bridge inside the switch namespace.
	SwitchBridge = "br0"

	IPv6Network   = "fd10:244::/48"
	IPv6SubnetLen = 64
	IPv4Network   = "10.244.0.0/16"
	IPv4SubnetLen = 24
	VNI           = 1
	Port          = 8472
)

// Router is the switch's address, every host's IPv6 default gateway.
var Router = net.ParseIP("2001:db8:1::1")

// Step is one command run inside network namespace NS.
type Step struct {
	NS   string
	Args []string
}

// Addr1 is host id's first uplink address, 2001:db8:1::<id>1 (id in hex):
// the lowest, so the one autodetection picks.
func Addr1(id int) net.IP { return net.ParseIP(fmt.Sprintf("2001:db8:1::%x1", id)) }

// Addr2 is host id's second uplink address, 2001:db8:1::<id>2.
func Addr2(id int) net.IP { return net.ParseIP(fmt.Sprintf("2001:db8:1::%x2", id)) }

// SwitchPort is the switch end of host id's uplink veth.
func SwitchPort(id int) string { return fmt.Sprintf("p%d", id) }

// Switch sets up the (already created) switch namespace sw: the underlay
// bridge with the router address. Nothing routes there; the address only
// makes the hosts' default route resolvable, so autodetection finds it.
func Switch(sw string) []Step {
	return []Step{
		{sw, []string{"ip", "link", "set", "lo", "up"}},
		{sw, []string{"ip", "link", "add", SwitchBridge, "type", "bridge", "mcast_snooping", "0"}},
		{sw, []string{"ip", "link", "set", SwitchBridge, "up"}},
		{sw, []string{"ip", "addr", "add", Router.String() + "/64", "dev", SwitchBridge, "nodad"}},
	}
}

// Host wires the (already created) host namespace host, id, to switch sw:
// a veth whose switch end is SwitchPort(id) and whose host end is Uplink,
// Addr1 and Addr2 (nodad), a default route via Router.
//
// The kernel lists a link's newest address first. By default Addr1 is
// added first, so Addr2 is listed first; reverse adds Addr2 first, so Addr1
// is both the lowest and the first listed, and a host using Addr2 got it
// only because its operator named it.
func Host(sw, host string, id int, reverse bool) []Step {
	port := SwitchPort(id)
	first, second := Addr1(id), Addr2(id)
	if reverse {
		first, second = second, first
	}
	return []Step{
		// Created in the switch namespace and moved straight into the
		// host: nothing ever appears in the caller's namespace.
		{sw, []string{"ip", "link", "add", port, "type", "veth", "peer", "name", Uplink, "netns", host}},
		{sw, []string{"ip", "link", "set", port, "master", SwitchBridge, "up"}},
		{host, []string{"ip", "link", "set", "lo", "up"}},
		{host, []string{"ip", "link", "set", Uplink, "up"}},
		{host, []string{"ip", "addr", "add", first.String() + "/64", "dev", Uplink, "nodad"}},
		{host, []string{"ip", "addr", "add", second.String() + "/64", "dev", Uplink, "nodad"}},
		{host, []string{"ip", "-6", "route", "add", "default", "via", Router.String(), "dev", Uplink}},
	}
}

// ConfigJSON is the lab's network config (<prefix>/config); dual adds IPv4.
func ConfigJSON(dual bool) string {
	m := map[string]any{
		"EnableIPv6": true, "EnableIPv4": dual,
		"IPv6Network": IPv6Network, "IPv6SubnetLen": IPv6SubnetLen,
		"Backend": map[string]any{"Type": "vxlan", "VNI": VNI, "Port": Port},
	}
	if dual {
		m["Network"], m["SubnetLen"] = IPv4Network, IPv4SubnetLen
	}
	data, _ := json.Marshal(m)
	return string(data)
}
