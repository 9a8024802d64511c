// Package vtep chooses the underlay interface and the VTEP address, following
// the VTEP table in DESIGN.md: the operator's choice first, autodetection only
// when nothing was named.
//
// API CONTRACT (agreed before implementation; the daemon codes against it).
package vtep

import "net"

// Options is what the operator said. Empty fields mean "not given".
type Options struct {
	PublicIPv6    string   // --public-ipv6
	PublicIP      string   // --public-ip: an IPv6 value acts as --public-ipv6 when that is empty; an IPv4 value is only advertised (PublicIPv4 in the lease)
	Iface         []string // --iface (repeatable or comma list): interface names or addresses, tried in order
	IfaceRegex    []string // --iface-regex: matched against addresses first, then interface names
	IfaceCanReach string   // --iface-can-reach: an IPv6 destination; use the route's preferred source
	// Annotation is the node annotation vxlan6.io/public-ipv6 (or its flannel
	// alias); used as PublicIPv6 only when neither PublicIPv6 nor an IPv6
	// PublicIP was given (a flag wins).
	Annotation string
}

// Choice is the outcome. Every field is shown in logs, the lease and metrics.
type Choice struct {
	IfName     string // underlay interface
	IfIndex    int
	MTU        int    // underlay MTU
	Local      net.IP // the vxlan device's local address (owned by IfName)
	Public     net.IP // advertised in the lease; equals Local unless NAT (see DESIGN.md)
	PublicIPv4 net.IP // from an IPv4 --public-ip, informational; nil otherwise
	// Source says how Public was chosen: "flag --public-ipv6", "flag --iface
	// address", "annotation vxlan6.io/public-ipv6", "flag --iface", "flag
	// --iface-regex", "flag --iface-can-reach", "default route".
	Source string
	// OperatorChosen is true when an address (not just an interface) was named.
	OperatorChosen bool
}

// Choose applies the table in the current network namespace. Every invalid
// choice (malformed, IPv4 where IPv6 is needed, link-local, not owned by any
// interface while no --iface was given, interface without usable address)
// returns an error whose message names the offending value.
func Choose(o Options) (*Choice, error) { panic("vtep: not implemented") }
