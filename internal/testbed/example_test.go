package testbed_test

import (
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// A typical multi-host test: two hosts, the default IPv6-only config,
// vxlan6d on each (host 1 told to tunnel from the address the kernel does
// not list first), one container per host made by the vxlan6 plugin, a ping
// across the overlay. Everything is removed when the test ends.
func Example() {
	var t *testing.T // the test's *testing.T

	b := testbed.New(t, testbed.Options{Hosts: 2})
	b.PutIPv6Config() // or PutConfig(ConfigJSON(true)) for dual-stack
	h1, h2 := b.Hosts[0], b.Hosts[1]
	h1.StartDaemon("--public-ipv6", h1.NotFirst().String())
	h2.StartDaemon() // autodetect
	h1.Daemon().WaitReady(30 * time.Second)
	h2.Daemon().WaitReady(30 * time.Second)

	c1, c2 := h1.AddContainer(), h2.AddContainer()
	if out, err := c1.Ping(c2.IPv6, 3); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	local, _ := h1.VXLANLocal() // == h1.NotFirst()
	has, _ := h2.HasFDBDst(local)
	_ = has // true: the peer tunnels to the named address
}
