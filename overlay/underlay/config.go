package underlay

import (
	"context"
	"net"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// CheckConfig is Check for the pod network(s) of cfg: the daemon refuses a
// config whose network overlaps the underlay link's addresses or connected
// routes, the VTEP(s) or the etcd endpoints' addresses.
func CheckConfig(ctx context.Context, cfg *lease.Config, ifIndex int, vteps []net.IP, endpoints []string) error {
	nets := []Network{{Field: "IPv6Network", Net: cfg.Networks.V6}}
	if cfg.DualStack() {
		nets = append(nets, Network{Field: "Network", Net: cfg.Networks.V4})
	}
	return check(ctx, nets, ifIndex, vteps, endpoints)
}
