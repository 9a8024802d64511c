package vtep

import (
	"errors"
	"net"
	"time"
)

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
	// DADTimeout bounds how long Choose waits for a tentative address (DAD
	// still running) to become usable. Zero means DefaultDADTimeout; a
	// negative value means do not wait.
	DADTimeout time.Duration
}

// DefaultDADTimeout covers the kernel's default DAD (one probe, one second)
// with margin.
const DefaultDADTimeout = 3 * time.Second

// Choice is the outcome. Every field is shown in logs, the lease and metrics.
type Choice struct {
	IfName  string // underlay interface
	IfIndex int
	MTU     int // underlay MTU
	// Local is the vxlan device's local address. It is owned by IfName,
	// except with --iface-can-reach when the route's preferred source lives
	// on another interface (see the package comment).
	Local      net.IP
	Public     net.IP // advertised in the lease; equals Local unless NAT (see DESIGN.md)
	PublicIPv4 net.IP // from an IPv4 --public-ip, informational; nil otherwise
	// Source says how Public was chosen: "flag --public-ipv6", "flag
	// --public-ip", "flag --iface address", "annotation vxlan6.io/public-ipv6",
	// "flag --iface", "flag --iface-regex", "flag --iface-can-reach", "default
	// route".
	Source string
	// OperatorChosen is true when an address (not just an interface or a
	// pattern) was named: --public-ipv6, an IPv6 --public-ip, the annotation,
	// or --iface ADDR.
	OperatorChosen bool
}

// NAT reports whether the advertised address differs from the local one.
func (c *Choice) NAT() bool { return !c.Local.Equal(c.Public) }

// Values of Choice.Source (shown as text in logs, metrics and status; the
// constants stay inside the package).
const (
	sourcePublicIPv6   = "flag --public-ipv6"
	sourcePublicIP     = "flag --public-ip"
	sourceAnnotation   = "annotation vxlan6.io/public-ipv6"
	sourceIfaceAddress = "flag --iface address"
	sourceIface        = "flag --iface"
	sourceIfaceRegex   = "flag --iface-regex"
	sourceCanReach     = "flag --iface-can-reach"
	sourceDefaultRoute = "default route"
)

// Errors returned by Choose and Options.Validate wrap one of these, so the
// package's tests can tell the cases apart; the message names the value.
// Nothing outside the package needs errors.Is on them yet: export one when
// a caller does.
var (
	errMalformed      = errors.New("malformed")
	errNotIPv6        = errors.New("not IPv6 (the underlay is IPv6-only)")
	errLinkLocal      = errors.New("link-local address cannot be a VTEP")
	errNotUnicast     = errors.New("not a global unicast address")
	errBadIfaceName   = errors.New("not a valid interface name")
	errBadRegex       = errors.New("regex does not compile")
	errNotOwned       = errors.New("owned by no interface")
	errNoSuchIface    = errors.New("no such interface")
	errNoUsableAddr   = errors.New("no usable global IPv6 address")
	errNoMatch        = errors.New("matches no interface with a usable global IPv6 address")
	errNoRoute        = errors.New("no IPv6 route")
	errNoDefaultRoute = errors.New("no IPv6 default route in the main table; pass --iface or --public-ipv6 to name the underlay")
	errDADFailed      = errors.New("duplicate address detection failed (another host uses it)")
	errTentative      = errors.New("still tentative (duplicate address detection not finished)")
	errLoopback       = errors.New("loopback interface cannot carry VXLAN")
	errLocalDest      = errors.New("is a local address, not a destination to reach")
)

// Choose applies the table in the current network namespace. Every invalid
// choice (malformed, IPv4 where IPv6 is needed, link-local, not owned by any
// interface while no --iface was given, interface without usable address)
// returns an error whose message names the offending value.
func Choose(o Options) (*Choice, error) {
	p, err := o.parse()
	if err != nil {
		return nil, err
	}
	return choose(p, o.DADTimeout, loadHost)
}
