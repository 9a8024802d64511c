package admin

import (
	"context"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// testNetworkConfig is the IPv6-only network config the admin tests store.
const testNetworkConfig = `{"IPv6Network":"fd10:244::/48","IPv6SubnetLen":64,"Backend":{"Type":"vxlan"}}`

// etcdFixture is a real etcd with testNetworkConfig under a prefix of its
// own: the registry, the CLI flags that reach it, and a bounded context.
type etcdFixture struct {
	e     *testutil.Etcd
	reg   *lease.Registry
	flags []string
	ctx   context.Context
}

func newEtcdFixture(t *testing.T, name string) *etcdFixture {
	t.Helper()
	e := testutil.StartEtcd(t)
	prefix := "/" + testutil.UniqueName(name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	f := &etcdFixture{e: e, reg: lease.New(e.Client, prefix), ctx: ctx,
		flags: []string{"--etcd-endpoints", e.Endpoints[0], "--etcd-prefix", prefix}}
	if _, err := e.Client.Put(ctx, f.reg.ConfigKey(), testNetworkConfig); err != nil {
		t.Fatal(err)
	}
	return f
}
