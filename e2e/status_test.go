package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// admin runs a vxlan6d admin command on h against the bed's etcd.
func admin(t *testing.T, h *testbed.Host, args ...string) (string, string, int) {
	t.Helper()
	return h.Run(60*time.Second, nil, append(args, h.Bed.EtcdFlags()...)...)
}

// TestStatusAgainstKernel: `vxlan6d status` shows the node's VTEP and who
// chose it, and every peer's lease beside the kernel's fdb, neighbour and
// route; --probe pings each peer's gateway through the overlay; a route
// deleted by hand and a stray route are flagged (exit 1).
func TestStatusAgainstKernel(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	b := newBed(t, 3, true)
	b.StartDaemons(readyTimeout, func(h *testbed.Host) []string {
		if h == b.Hosts[0] {
			return []string{"--public-ipv6", h.NotFirst().String()}
		}
		return nil
	})
	for _, h := range b.Hosts {
		h.AddContainer()
	}
	h1 := b.Hosts[0]
	status := func(extra ...string) (string, string, int) {
		return admin(t, h1, append([]string{"status", "--subnet-file", h1.SubnetFile}, extra...)...)
	}
	// Peers appear within moments of their leases.
	var out, errOut string
	var code int
	if err := testbed.Eventually(meshTimeout, 500*time.Millisecond, func() error {
		if out, errOut, code = status(); code != 0 {
			return errorString("status not clean yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("vxlan6d status:\n%s", out)
	for _, want := range []string{h1.NotFirst().String() + " (flag --public-ipv6, the operator's choice) on " + testbed.Uplink,
		testbed.Device, b.Hosts[1].Name, b.Hosts[2].Name, "live, TTL left"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if strings.Contains(out, "MISMATCH") || strings.Contains(out, "STRAY") {
		t.Errorf("a clean node shows a mismatch")
	}

	out, errOut, code = status("--probe", "--probe-count", "3", "-o", "json")
	var v struct {
		Peers []struct {
			VTEP  string
			OK    bool
			Probe struct {
				Sent, Received int
				LossPercent    float64
				RTTAvgMs       float64
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || len(v.Peers) != 2 {
		t.Fatalf("status --probe -o json: exit %d, %v, %d peers\n%s%s", code, err, len(v.Peers), out, errOut)
	}
	for _, p := range v.Peers {
		if !p.OK || p.Probe.Sent != 3 || p.Probe.Received != 3 || p.Probe.RTTAvgMs <= 0 {
			t.Errorf("peer %s: ok %v probe %+v", p.VTEP, p.OK, p.Probe)
		}
	}

	// Break the data path by hand: one route gone, one nobody asked for.
	peer := b.LeaseFor(b.Hosts[1].WaitSubnetFile(readyTimeout).VTEP)
	h1.MustExec("ip", "-6", "route", "del", peer.Subnets.V6.String(), "dev", testbed.Device)
	h1.MustExec("ip", "-6", "route", "add", "fd10:244:ff::/64", "via", "fd10:244:ff::", "dev", testbed.Device, "onlink")
	out, errOut, code = status()
	if code != 1 || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, peer.Subnets.V6.String()+" missing") ||
		!strings.Contains(out, "STRAY route fd10:244:ff::/64") || !strings.Contains(errOut, "problem") {
		t.Errorf("status after breaking routes: exit %d\n%s%s", code, out, errOut)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// TestAdminCommands: leases and nodes in every output format, annotate
// NODE printing, lease delete (a live lease only with --force) and lease
// reserve, which the node then uses.
func TestAdminCommands(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	b := newBed(t, 2, false)
	b.StartDaemons(readyTimeout, nil)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	h1.Annotate("example.com/rack=r1")

	for _, f := range []string{"table", "wide", "json", "yaml"} {
		out, errOut, code := admin(t, h1, "leases", "-o", f)
		if code != 0 || !strings.Contains(out, h1.Name) || !strings.Contains(out, h2.Name) {
			t.Errorf("leases -o %s: exit %d\n%s%s", f, code, out, errOut)
		}
		out, errOut, code = admin(t, h1, "nodes", "-o", f)
		if code != 0 || !strings.Contains(out, h2.Name) || (f != "table" && !strings.Contains(out, "example.com/rack")) {
			t.Errorf("nodes -o %s: exit %d\n%s%s", f, code, out, errOut)
		}
	}
	out, _, _ := admin(t, h1, "leases", "-o", "yaml")
	var ls []map[string]any
	if err := yaml.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 2 || ls[0]["state"] != "live" {
		t.Errorf("leases -o yaml: %v %v", err, ls)
	}
	if out, errOut, code := admin(t, h1, "annotate", h1.Name); code != 0 || out != "example.com/rack=r1\n" {
		t.Errorf("annotate NODE: exit %d %q %s", code, out, errOut)
	}

	sf2 := h2.WaitSubnetFile(readyTimeout)
	vtep2 := sf2.VTEP.String()
	if _, errOut, code := admin(t, h1, "lease", "delete", vtep2); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("lease delete of a live lease: exit %d %s", code, errOut)
	}
	// Reserve a subnet for h2's VTEP: h2 renumbers to it (with --force,
	// as it holds a live lease of another subnet).
	want := "fd10:244:0:77::/64"
	if _, errOut, code := admin(t, h1, "lease", "reserve", vtep2, want); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("reserve over a live lease: exit %d %s", code, errOut)
	}
	if _, errOut, code := admin(t, h1, "lease", "reserve", vtep2, "fd10:245::/64"); code != 1 || !strings.Contains(errOut, "inside the network") {
		t.Errorf("reserve outside the network: exit %d %s", code, errOut)
	}
	if out, errOut, code := admin(t, h1, "lease", "reserve", "--force", vtep2, want); code != 0 {
		t.Fatalf("lease reserve --force: exit %d %s%s", code, out, errOut)
	}
	if err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if sf, err := h2.SubnetConfig(); err != nil || sf.Subnets.V6.String() != want {
			return errorString("subnet file not renumbered")
		}
		return nil
	}); err != nil {
		t.Fatalf("%s did not take its reservation %s: %v", h2.Name, want, err)
	}
	if l := b.LeaseFor(sf2.VTEP); l == nil || !l.Reserved || l.NodeName != h2.Name {
		t.Errorf("reservation record: %+v", l)
	}
	// A reservation is not live: delete needs no --force.
	if out, errOut, code := admin(t, h1, "lease", "delete", vtep2); code != 0 || !strings.Contains(out, "reservation") {
		t.Errorf("delete reservation: exit %d %s%s", code, out, errOut)
	}
	// h2's daemon takes a lease again at once (KeepAlive sees the delete).
	if err := testbed.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if l := b.LeaseFor(sf2.VTEP); l == nil || l.Reserved {
			return errorString("no live lease again")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if _, errOut, code := admin(t, h1, "lease", "delete", "--force", vtep2); code != 0 {
		t.Errorf("lease delete --force: exit %d %s", code, errOut)
	}
}
