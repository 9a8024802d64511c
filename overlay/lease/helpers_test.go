package lease

import (
	"context"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

const (
	cfgV6   = `{"IPv6Network":"fd10:244::/48","Backend":{"Type":"vxlan"}}`
	cfgDual = `{"EnableIPv4":true,"IPv6Network":"fd10:244::/48","Network":"10.244.0.0/16","SubnetLen":24}`
)

type env struct {
	t   *testing.T
	e   *testutil.Etcd
	cli *clientv3.Client
	r   *Registry
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := testutil.StartEtcd(t)
	r := New(e.Client, "/"+testutil.UniqueName("t"))
	// Exact allocations are asserted below; TestAcquireRandom covers the
	// random choice the daemon uses.
	r.lowestFirst = true
	return &env{t: t, e: e, cli: e.Client, r: r, ctx: testutil.Context(t, time.Minute)}
}

func (v *env) config(js string) *Config {
	v.t.Helper()
	cfg, err := ParseConfig([]byte(js))
	if err != nil {
		v.t.Fatalf("parse config %s: %v", js, err)
	}
	if _, err := v.cli.Put(v.ctx, v.r.ConfigKey(), js); err != nil {
		v.t.Fatal(err)
	}
	return cfg
}

func (v *env) put(key, value string) {
	v.t.Helper()
	if _, err := v.cli.Put(v.ctx, key, value); err != nil {
		v.t.Fatal(err)
	}
}

// list is List that fails the test on error.
func (v *env) list(cfg *Config) *Snapshot {
	v.t.Helper()
	snap, err := v.r.List(v.ctx, cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	return snap
}

// reserve writes an operator's reservation (no etcd lease) for vtep.
func (v *env) reserve(vtep, s6, s4 string) {
	v.t.Helper()
	rec := fmt.Sprintf(`{"VTEP":%q,"IPv6Subnet":%q,"VtepMAC":"02:00:00:00:00:99","NodeName":"reserved"`, vtep, s6)
	if s4 != "" {
		rec += fmt.Sprintf(`,"Subnet":%q`, s4)
	}
	v.put(v.r.LeasesPrefix()+vtep, rec+"}")
}

func attrs(vtep string, n int) Attrs {
	return Attrs{VTEP: net.ParseIP(vtep), VtepMAC: net.HardwareAddr{2, 0, 0, 0, byte(n >> 8), byte(n)}, NodeName: fmt.Sprintf("node%d", n)}
}

func mustAcquire(t *testing.T, v *env, cfg *Config, a Attrs, ttl time.Duration) *Lease {
	t.Helper()
	l, err := v.r.Acquire(v.ctx, cfg, a, ttl)
	if err != nil {
		t.Fatalf("acquire %s: %v", a.VTEP, err)
	}
	return l
}

func wantSubnet(t *testing.T, what string, got *net.IPNet, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Fatalf("%s = %s, want none", what, got)
		}
		return
	}
	if got == nil || got.String() != want {
		t.Fatalf("%s = %v, want %s", what, got, want)
	}
}

func timeAfter(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

func opDelete(key string) clientv3.Op     { return clientv3.OpDelete(key) }
func opPut(key, value string) clientv3.Op { return clientv3.OpPut(key, value) }

func bigInt(i int) *big.Int { return big.NewInt(int64(i)) }
