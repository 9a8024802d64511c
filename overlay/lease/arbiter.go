package lease

import (
	"net"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// Self is this node as the arbiter needs to know it: a lease that claims
// any of it is not a peer.
type Self struct {
	VTEPs []net.IP          // the advertised and the local VTEP
	MAC   net.HardwareAddr  // this node's VXLAN device MAC (nil before the device exists)
	Lease *Lease            // this node's lease: its subnets are ours
	Local func(net.IP) bool // this host's own addresses (nil: not checked)
}

// Judge says why l cannot be a peer of self ("" if it can). Conflicts
// between leases (shared subnets or MACs) are already settled by List and
// Watch, the first holder by CreateRevision winning; what they cannot know
// is this node: its VTEPs and other addresses, its MAC and its subnets,
// which a lease created before ours may still claim.
func (s Self) Judge(l *Lease) string {
	for _, v := range s.VTEPs {
		if v != nil && l.VTEP.Equal(v) {
			return "claims our own VTEP"
		}
	}
	switch {
	case s.Local != nil && s.Local(l.VTEP):
		return "VTEP " + l.VTEP.String() + " is one of this host's addresses"
	case len(s.MAC) > 0 && l.VtepMAC.String() == s.MAC.String():
		return "claims our VTEP MAC " + l.VtepMAC.String()
	case s.Lease != nil && ipnet.Same(l.Subnets.V6, s.Lease.Subnets.V6):
		return "IPv6 subnet " + l.Subnets.V6.String() + " is ours"
	case s.Lease != nil && l.Subnets.V4 != nil && ipnet.Same(l.Subnets.V4, s.Lease.Subnets.V4):
		return "IPv4 subnet " + l.Subnets.V4.String() + " is ours"
	}
	return ""
}
