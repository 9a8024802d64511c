package daemon

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMetricsText(t *testing.T) {
	m := newMetrics(5 * time.Minute)
	m.update(func(m *metrics) {
		m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, m.operatorChosen = "2001:db8::2", "2001:db8::2", "flag --public-ipv6", "eth0", true
		m.peers = 3
		m.errors["list_leases"] = 2
		m.periodicResyncs = 7
	})
	var b bytes.Buffer
	m.write(&b)
	for _, want := range []string{
		`vxlan6d_vtep_info{address="2001:db8::2",local="2001:db8::2",source="flag --public-ipv6",interface="eth0",operator_chosen="true"} 1`,
		"vxlan6d_peers 3", "vxlan6d_lease_ttl_seconds 300", `vxlan6d_errors_total{op="list_leases"} 2`, "vxlan6d_ready 0",
		"vxlan6d_periodic_resyncs_total 7",
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
