package lease

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/etcdserver"
)

// TestEtcdOutage stops etcd for longer than the lease TTL and starts it again
// on the same data: KeepAlive must survive (never return, never give up) and
// end up holding the same subnet; a watch must either resume or ask for a
// resync; WatchConfig and WatchNode must pick up changes made after etcd
// is back.
func TestEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits out a lease TTL with etcd down")
	}
	dir, err := os.MkdirTemp("", "vx6lease-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := etcdserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ecfg := etcdserver.Config{
		DataDir:    filepath.Join(dir, "data"),
		ClientURLs: []string{"unix://" + filepath.Join(dir, "etcd.sock")},
		PeerURL:    fmt.Sprintf("http://127.0.0.1:%d", port),
		NoFsync:    true,
	}
	srv, err := etcdserver.Start(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	v := &env{t: t, cli: cli, r: New(cli, "/"+testutil.UniqueName("t")), ctx: testutil.Context(t, 2*time.Minute)}
	cfg := v.config(cfgV6)
	mustAcquire(t, v, cfg, attrs("2001:db8:1::9", 9), time.Hour)
	a := attrs("2001:db8:1::1", 1)
	const ttl = 3 * time.Second
	l := mustAcquire(t, v, cfg, a, ttl)

	kaCtx, kaCancel := context.WithCancel(v.ctx)
	kaDone := make(chan struct{})
	changes := make(chan *Lease, 16)
	go func() {
		defer close(kaDone)
		v.r.KeepAlive(kaCtx, cfg, a, l, ttl, func(nl *Lease) { changes <- nl })
	}()
	t.Cleanup(func() { kaCancel(); <-kaDone })
	snap := v.list(cfg)
	wch := v.r.Watch(v.ctx, cfg, snap.Revision)
	cfgCh, nodeCh := v.r.WatchConfig(v.ctx), v.r.WatchNode(v.ctx, "host-a")
	if c := <-cfgCh; c.Err != nil || c.Config.Backend.VNI != DefaultVNI {
		t.Fatalf("WatchConfig before the outage: %+v", c)
	}
	if ann := <-nodeCh; len(ann) != 0 {
		t.Fatalf("WatchNode before the outage: %v", ann)
	}

	srv.Close()
	time.Sleep(2 * ttl)
	select {
	case <-kaDone:
		t.Fatal("KeepAlive returned while etcd was down")
	default:
	}
	srv, err = etcdserver.Start(ecfg)
	if err != nil {
		t.Fatalf("restart etcd: %v", err)
	}

	// Whether the client's keepalive noticed the gap or not, after a while
	// our key must exist on a live etcd lease with the old subnet.
	key := v.r.LeaseKey(a.VTEP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := holds(v, key, l)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after etcd came back: %s", why)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// And it stays alive past another TTL.
	time.Sleep(2 * ttl)
	if ok, why := holds(v, key, l); !ok {
		t.Fatalf("%s after etcd came back: %s", 2*ttl, why)
	}
	for len(changes) > 0 {
		if nl := <-changes; nl.Subnets.V6.String() != l.Subnets.V6.String() {
			t.Fatalf("re-acquired %s, want %s", nl.Subnets.V6, l.Subnets.V6)
		}
	}

	v.put(v.r.ConfigKey(), `{"IPv6Network":"fd10:244::/48","Backend":{"Type":"vxlan","VNI":7}}`)
	if err := v.r.Annotate(v.ctx, "host-a", AnnotationPublicIPv6, "2001:db8::77"); err != nil {
		t.Fatal(err)
	}
	for c := range cfgCh {
		if c.Err == nil && c.Config.Backend.VNI == 7 {
			break
		}
	}
	for ann := range nodeCh {
		if ann[AnnotationPublicIPv6] == "2001:db8::77" {
			break
		}
	}
	if v.ctx.Err() != nil {
		t.Fatal("WatchConfig or WatchNode did not deliver the change made after etcd came back")
	}

	v.put(v.r.LeasesPrefix()+"2001:db8::5", rec("2001:db8::5", "fd10:244:0:5::/64", "", 5))
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-wch:
			if !ok {
				t.Fatal("watch closed without Resync")
			}
			if ev.Type == Resync || (ev.Type == Added && ev.Lease.VTEP.String() == "2001:db8::5") {
				return
			}
		case <-timeout:
			t.Fatal("watch neither delivered the new lease nor asked for a resync within 20s of etcd coming back")
		}
	}
}

// holds reports whether key holds l's subnet on a live etcd lease.
func holds(v *env, key string, l *Lease) (bool, string) {
	ctx, cancel := context.WithTimeout(v.ctx, 2*time.Second)
	defer cancel()
	resp, err := v.cli.Get(ctx, key)
	if err != nil {
		return false, err.Error()
	}
	if len(resp.Kvs) == 0 {
		return false, "key missing"
	}
	kv := resp.Kvs[0]
	rec, err := parseLease(&Config{Networks: ipnet.Subnets{V6: l.Subnets.V6}, SubnetLen: ipnet.PerFamily[int]{V6: 64}}, v.r.LeasesPrefix(),
		keyValue{key: key, value: kv.Value, lease: kv.Lease}, func(string) {})
	if err != nil || rec.Subnets.V6.String() != l.Subnets.V6.String() {
		return false, fmt.Sprintf("record %s: %v", kv.Value, err)
	}
	if kv.Lease == 0 {
		return false, "key has no etcd lease"
	}
	ttl, err := v.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil || ttl.TTL <= 0 {
		return false, fmt.Sprintf("etcd lease %x not alive: %v %v", kv.Lease, ttl, err)
	}
	return true, ""
}
