package daemon

import (
	"net"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/underlay"
	"github.com/vxlan6/vxlan6/overlay/vtep"
)

// hostAddrs is this host's addresses for the peer check (no peer may use one
// as its VTEP); one netlink dump per 5 s at most, however many peers.
var hostAddrs = underlay.NewLocalAddrs(5 * time.Second)

// self is this node, with the VTEP choice c, as lease.Self.Judge needs it.
func (d *daemon) self(c *vtep.Choice) lease.Self {
	s := lease.Self{VTEPs: []net.IP{c.Public, c.Local}, Lease: d.ka.lease, Local: hostAddrs.Has}
	if d.dev != nil {
		s.MAC = d.dev.MAC
	}
	return s
}
