package admin

import (
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestReserveRefusesRecordsDaemonsSkip: 'lease reserve' writes only a
// record the daemons accept. A VTEP inside the pod network or site-local,
// or a node name longer than a record field may be, would be skipped as
// invalid by every reader (the node never gets its reservation); the
// command fails naming why and writes nothing. A good one is written.
func TestReserveRefusesRecordsDaemonsSkip(t *testing.T) {
	f := newEtcdFixture(t, "rsv")
	e, reg, flags, ctx := f.e, f.reg, f.flags, f.ctx
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fd10:244:0:9::1", "fd10:244:0:5::/64"}, "inside the pod network"},
		{[]string{"fec0::1", "fd10:244:0:5::/64"}, "site-local"},
		{[]string{"--node", strings.Repeat("n", 300), "2001:db8::5", "fd10:244:0:5::/64"}, "NodeName"},
	} {
		code, out, errOut, _ := testCLI(t, nil, "", append(append([]string{"lease", "reserve"}, c.args...), flags...)...)
		if code != ExitError || !strings.Contains(errOut, c.want) {
			t.Errorf("reserve %v: exit %d, want 1 naming %q:\n%s%s", c.args, code, c.want, out, errOut)
		}
	}
	resp, err := e.Client.Get(ctx, reg.LeasesPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("refused reservations wrote %d record(s) (%v)", resp.Count, err)
	}
	if code, out, errOut, _ := testCLI(t, nil, "", append([]string{"lease", "reserve", "--node", "n5", "2001:db8::5", "fd10:244:0:5::/64"}, flags...)...); code != ExitOK {
		t.Fatalf("good reservation: exit %d\n%s%s", code, out, errOut)
	}
	cfg, _ := reg.GetConfig(ctx)
	snap, err := reg.List(ctx, cfg)
	if err != nil || len(snap.Leases) != 1 || snap.Skipped != 0 || !snap.Leases[0].Reserved || snap.Leases[0].NodeName != "n5" {
		t.Errorf("good reservation as the daemons read it: %+v %v", snap, err)
	}
}
