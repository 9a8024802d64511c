package admin

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

// TestListingsSurviveCorruptRecords: a lease or node record in etcd that is
// not what vxlan6d writes (garbage JSON, a node key with a '/') must not
// hide the good ones: 'leases' and 'nodes' list every valid record, in every
// format, and name what they skipped on stderr. These are the commands an
// operator runs to find such a record.
func TestListingsSurviveCorruptRecords(t *testing.T) {
	f := newEtcdFixture(t, "bad")
	e, reg, flags, ctx := f.e, f.reg, f.flags, f.ctx
	vtep := net.ParseIP("2001:db8::21")
	_, s6, _ := net.ParseCIDR("fd10:244:0:21::/64")
	good, err := lease.MarshalRecord(&lease.Lease{VTEP: vtep, Subnets: ipnet.Subnets{V6: s6}, VtepMAC: vxlan.MACFor(vtep), NodeName: "good"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		reg.LeaseKey(vtep):                  string(good),
		reg.LeasesPrefix() + "2001:db8::66": `{not json`,
		reg.NodeKey("good"):                 `{"annotations":{"example.com/rack":"r1"}}`,
		reg.NodeKey("broken"):               `{not json`,
		reg.NodeKey("typed"):                `{"annotations":{"a":1}}`,
		reg.NodeKey("nested") + "/deeper":   `{"annotations":{}}`,
	} {
		if _, err := e.Client.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}

	// Two live records on one etcd lease (its TTL is asked once).
	g, err := e.Client.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"2001:db8::31", "2001:db8::32"} {
		ip := net.ParseIP(v)
		_, sn, _ := net.ParseCIDR(fmt.Sprintf("fd10:244:0:3%d::/64", i))
		rec, err := lease.MarshalRecord(&lease.Lease{VTEP: ip, Subnets: ipnet.Subnets{V6: sn}, VtepMAC: vxlan.MACFor(ip), NodeName: "live"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Client.Put(ctx, reg.LeaseKey(ip), string(rec), clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut, _ := testCLI(t, nil, "", append([]string{"leases", "-o", "json"}, flags...)...)
	var views []leaseView
	if err := json.Unmarshal([]byte(out), &views); err != nil || code != ExitOK || len(views) != 3 {
		t.Fatalf("leases -o json: exit %d %v\n%s%s", code, err, out, errOut)
	}
	for _, v := range views {
		if live := v.Node == "live"; live != (v.State == "live" && v.TTLSeconds > 500) || v.Reserved == live {
			t.Errorf("lease %s of node %s: state %s ttl %d reserved %v", v.VTEP, v.Node, v.State, v.TTLSeconds, v.Reserved)
		}
	}

	for _, f := range []string{"table", "wide", "json", "yaml"} {
		code, out, errOut, _ := testCLI(t, nil, "", append([]string{"leases", "-o", f}, flags...)...)
		if code != ExitOK || !strings.Contains(out, "2001:db8::21") || strings.Contains(out, "2001:db8::66") ||
			!strings.Contains(errOut, "1 invalid lease record(s) skipped") {
			t.Errorf("leases -o %s with a corrupt lease: exit %d\n%s%s", f, code, out, errOut)
		}
		code, out, errOut, _ = testCLI(t, nil, "", append([]string{"nodes", "-o", f}, flags...)...)
		if code != ExitOK || !strings.Contains(out, "good") || !strings.Contains(out, "2001:db8::21") ||
			(f != "table" && !strings.Contains(out, "example.com/rack")) ||
			!strings.Contains(errOut, reg.NodeKey("broken")) || !strings.Contains(errOut, reg.NodeKey("typed")) || !strings.Contains(errOut, reg.NodeKey("nested")+"/deeper") {
			t.Errorf("nodes -o %s with corrupt node records: exit %d\n%s%s", f, code, out, errOut)
		}
	}
	code, out, errOut, _ = testCLI(t, nil, "", append([]string{"nodes", "-o", "json"}, flags...)...)
	var nodes []nodeView
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || code != ExitOK {
		t.Fatalf("nodes -o json: exit %d %v\n%s%s", code, err, out, errOut)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "good,live" {
		t.Errorf("nodes -o json lists %v, want only the valid nodes good and live", names)
	}
}
