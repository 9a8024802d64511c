package testbed_test

import (
	"net"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// TestUnderlay checks the bed itself: two global addresses per uplink in the
// documented kernel order, no IPv4, a default route, hosts reach each other
// and the router over the switch, and etcd can go away and come back.
func TestUnderlay(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		b := testbed.New(t, testbed.Options{Hosts: 2, ReverseAddrOrder: reverse})
		h1, h2 := b.Hosts[0], b.Hosts[1]
		listed, err := h1.ListedAddrs()
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) != 2 || !listed[0].Equal(h1.FirstListed()) || !listed[1].Equal(h1.NotFirst()) {
			t.Fatalf("reverse=%v: kernel lists %v, want [%s %s]", reverse, listed, h1.FirstListed(), h1.NotFirst())
		}
		if out := h1.MustExec("ip", "-4", "addr", "show", "dev", testbed.Uplink); out != "" {
			t.Errorf("IPv4 on the underlay: %s", out)
		}
		if out := h1.MustExec("ip", "-6", "route", "show", "default"); out == "" {
			t.Error("no IPv6 default route")
		}
		for _, dst := range []net.IP{h2.Addr1, h2.Addr2, testbed.Router} {
			if out, err := b.Ping(h1.Name, dst, 2); err != nil {
				t.Errorf("ping %s: %v\n%s", dst, err, out)
			}
		}
	}
	b := testbed.New(t, testbed.Options{Hosts: 1})
	b.PutIPv6Config()
	b.StopEtcd()
	b.StartEtcd()
	if err := testbed.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		_, err := b.Registry().GetConfig(testutil.Context(t, 5*time.Second))
		return err
	}); err != nil {
		t.Fatalf("etcd after restart: %v", err)
	}
}
