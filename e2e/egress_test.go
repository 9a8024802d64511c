package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/egress"
)

// TestPodEgressMasquerade: with the shipped conflists (no ipMasq) and the
// daemon's defaults, a pod reaches addresses outside the cluster, the
// underlay router (IPv6) and an IPv4 address on the same switch, because
// vxlan6d masquerades pod egress; with --ip-masq=false the rules go and
// the router, which has no route to the pod network, cannot answer. The
// plugin's per-attachment ipMasq (chains VX6-*) works beside it and alone.
// The host's firewall drops forwarded traffic (FORWARD policy DROP, both
// families, as Docker leaves it): egress must pass the daemon's forward
// rules as well as its masquerade.
func TestPodEgressMasquerade(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	portmap := refPlugin(t, "portmap")
	b := testbed.New(t, testbed.Options{Hosts: 1, ReverseAddrOrder: true, PluginExtra: map[string]any{"ipMasq": true}})
	b.PutConfig(testbed.ConfigJSON(true))
	h := b.Hosts[0]
	h.DropForward()
	// An IPv4 "outside": the switch and the host's uplink get 192.0.2.0/24.
	router4 := net.ParseIP("192.0.2.1")
	b.MustExec(b.Switch, "ip", "addr", "add", "192.0.2.1/24", "dev", "br0")
	h.MustExec("ip", "addr", "add", "192.0.2.11/24", "dev", testbed.Uplink)
	binDir := shippedBinDir(t, portmap)
	h.StartDaemon()
	h.Daemon().WaitReady(readyTimeout)
	c6 := shippedContainer(t, h, "10-vxlan6.conflist", binDir, nil)
	c46 := shippedContainer(t, h, "10-vxlan6-dualstack.conflist", binDir, nil)
	cm := h.AddContainer() // the testbed's conflist, with "ipMasq": true
	for _, x := range []struct {
		c   *testbed.Container
		dst net.IP
	}{{c6, testbed.Router}, {c46, testbed.Router}, {c46, router4}, {cm, testbed.Router}} {
		if err := waitReach(x.c.Name, x.dst, meshTimeout); err != nil {
			out, _ := h.Exec("ip6tables-save", "-t", "nat")
			t.Errorf("pod %s: %v\n%s", x.c.IPv6, err, out)
		}
	}
	out, _ := h.Exec("ip6tables", "-t", "nat", "-S", egress.Chain)
	if !strings.Contains(out, "MASQUERADE") {
		t.Errorf("no %s chain:\n%s", egress.Chain, out)
	}

	h.Daemon().Stop()
	h.StartDaemon("--ip-masq=false")
	h.Daemon().WaitReady(readyTimeout)
	if err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if out, _ := h.Exec("ip6tables", "-t", "nat", "-S"); strings.Contains(out, egress.Chain) {
			return errorString("chain still there")
		}
		return nil
	}); err != nil {
		t.Fatalf("--ip-masq=false left %s in place", egress.Chain)
	}
	if err := pingOnce(c6.Name, testbed.Router); err == nil {
		t.Errorf("pod %s reached the router without masquerade: the test proves nothing", c6.IPv6)
	}
	if err := waitReach(cm.Name, testbed.Router, meshTimeout); err != nil {
		out, _ := h.Exec("ip6tables-save", "-t", "nat")
		t.Errorf("the plugin's ipMasq alone: %v\n%s", err, out)
	}
}
