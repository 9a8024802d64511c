package daemon

import (
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// Every call the main loop makes is bounded, so that a stuck etcd or kernel
// turns into an error the loop logs and retries (and, should something still
// hang, into a failing liveness check) instead of a loop that waits forever.
//
//   - etcd: each request or group of requests of the loop runs under a
//     context with a deadline (etcdCallTimeout here, healListTimeout, the
//     10s of annotations, the 30s of a VTEP move, the lease package's
//     opTimeout); clientv3 otherwise waits for a connection indefinitely.
//   - netlink: every socket gets send and receive timeouts, the
//     package-level ones here and the vxlan device's handle in package vxlan
//     (vxlan.NetlinkTimeout).
//   - iptables: package firewall runs each command with a deadline.

// etcdCallTimeout bounds one etcd operation of the loop that may take a few
// round trips (acquiring a lease retries lost races; List pages).
const etcdCallTimeout = 30 * time.Second

func init() {
	// netlink's default for its per-call sockets is 60s; the loop's
	// liveness allows more, but a kernel that does not answer in 10s will
	// not answer later either.
	_ = netlink.SetSocketTimeout(vxlan.NetlinkTimeout)
}
