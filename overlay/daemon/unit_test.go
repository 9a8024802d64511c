package daemon

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

func TestMetricsText(t *testing.T) {
	m := newMetrics(5*time.Minute, "v9")
	m.update(func(m *metrics) {
		m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, m.operatorChosen = "2001:db8::2", "2001:db8::2", "flag --public-ipv6", "eth0", true
		m.peers = 3
		m.errors["list_leases"] = 2
		m.periodicResyncs = 7
	})
	var b bytes.Buffer
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// client_golang writes labels sorted by name.
		`vxlan6d_vtep_info{address="2001:db8::2",interface="eth0",local="2001:db8::2",operator_chosen="true",source="flag --public-ipv6"} 1`,
		"vxlan6d_peers 3", "vxlan6d_lease_ttl_seconds 300", `vxlan6d_errors_total{op="list_leases"} 2`, "vxlan6d_ready 0",
		"vxlan6d_periodic_resyncs_total 7",
		`vxlan6d_build_info{goversion="go`, `version="v9"} 1`, "go_goroutines ", "process_resident_memory_bytes ",
		"vxlan6d_reconcile_duration_seconds_bucket", `vxlan6d_etcd_errors_total{op="list_leases"} 2`,
		`vxlan6d_peer_leases{state="programmed"} 3`, "vxlan6d_lease_renewals_total 0", `vxlan6d_ready_condition{condition="lease"} 0`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if ok, missing := m.ready(); ok || !strings.Contains(missing, "lease") {
		t.Errorf("ready %v %q", ok, missing)
	}
}

func TestFlagNamesAddress(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want bool
	}{
		{Options{}, false},
		{Options{PublicIPv6: "x"}, true},
		{Options{PublicIP: "2001:db8::1"}, true},
		{Options{PublicIP: "192.0.2.1"}, false},
		{Options{PublicIP: "garbage"}, true}, // let vtep.Choose reject it early
		{Options{Iface: []string{"2001:db8::1"}}, false},
	} {
		if got := c.o.FlagNamesAddress(); got != c.want {
			t.Errorf("%+v: got %v", c.o, got)
		}
	}
}

func TestFixedDiff(t *testing.T) {
	_, n6, _ := net.ParseCIDR("fd10:244::/48")
	_, other, _ := net.ParseCIDR("fd10:245::/48")
	old := &lease.Config{EnableIPv6: true, Networks: ipnet.Subnets{V6: n6}, SubnetLen: ipnet.PerFamily[int]{V6: 64}, Backend: lease.Backend{VNI: 1, Port: 8472}}
	same := *old
	same.Backend.VNI, same.Backend.Port = 2, 4789 // followed live: not a fixed field
	if d := fixedDiff(old, &same); d != "" {
		t.Errorf("VNI and port changes reported as fixed: %q", d)
	}
	changed := *old
	changed.Networks.V6, changed.Backend.MTU = other, 1300
	if d := fixedDiff(old, &changed); d != "IPv6Network fd10:244::/48 -> fd10:245::/48, Backend.MTU 0 -> 1300" {
		t.Errorf("fixedDiff = %q", d)
	}
}

func TestHealerTimer(t *testing.T) {
	h := newHealer(0)
	h.start()
	select {
	case <-h.C():
		t.Fatal("interval 0 fired")
	case <-time.After(20 * time.Millisecond):
	}
	// A failed write arms the early retry once, and the timer is not
	// reset while it is armed.
	h.soon = true
	h.arm()
	if !h.armed {
		t.Fatal("not armed after a failed write")
	}
	h.fired(false) // etcd unreadable: the next try a full interval later, still armed
	if !h.armed {
		t.Error("a failed heal disarmed a pending early retry")
	}
	h.soon = false
	h.fired(true)
	if h.armed {
		t.Error("armed after a successful heal")
	}
	h.stop()
}

func TestBuildPeers(t *testing.T) {
	_, sub1, _ := net.ParseCIDR("fd10:244:0:1::/64")
	_, sub2, _ := net.ParseCIDR("fd10:244:0:2::/64")
	own := net.ParseIP("2001:db8::1")
	mk := func(vtep string, sub *net.IPNet, mac, node string) lease.Lease {
		m, _ := net.ParseMAC(mac)
		return lease.Lease{VTEP: net.ParseIP(vtep), Subnets: ipnet.Subnets{V6: sub}, VtepMAC: m, NodeName: node}
	}
	mine := mk("2001:db8::1", sub1, "02:00:00:00:00:01", "me")
	snap := &lease.Snapshot{Leases: []lease.Lease{
		mk("2001:db8::3", sub1, "02:00:00:00:00:03", "other"), // claims our subnet: skipped, counted
		mk("2001:db8::2", sub2, "02:00:00:00:00:02", "peer"),
		mine, // our own: not a peer, not counted
	}}
	s := lease.Self{VTEPs: []net.IP{own}, Lease: &mine}
	isOwn := func(l *lease.Lease) bool { return l.VTEP.Equal(own) && l.NodeName == "me" }
	tab, skipped := buildPeers(snap, s, isOwn, slog.New(slog.DiscardHandler), true)
	if tab.len() != 1 || skipped != 1 {
		t.Fatalf("peers %v, skipped %d; want only 2001:db8::2 and one skipped", tab.byVTEP, skipped)
	}
	if p, ok := tab.byVTEP["2001:db8::2"]; !ok || p.Subnets.V6.String() != sub2.String() {
		t.Errorf("table %v", tab.byVTEP)
	}
}
