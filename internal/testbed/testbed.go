// Package testbed builds a multi-host vxlan6 lab inside one machine for Go
// tests: every "host" is a network namespace, and the underlay is a bridge in
// a "switch" namespace. It is the shared harness of the daemon's, the
// end-to-end and the runtime tests.
//
// Layout of one Bed (all names unique per test):
//
//	switch netns <bed>s: bridge "br0" holding the router address
//	    2001:db8:1::1/64 (nothing routes; it only makes the hosts' default
//	    route resolvable, so autodetection finds it)
//	host i netns <bed>h<i>: uplink "eth0" (veth to the switch) with TWO
//	    global IPv6 addresses, nodad, no IPv4:
//	        Addr1 = 2001:db8:1::<i>1/64 and Addr2 = 2001:db8:1::<i>2/64
//	    (<i> in hex), plus "default via 2001:db8:1::1 dev eth0".
//
// The kernel lists a link's NEWEST address first. By default Addr1 is added
// first, so Addr2 is listed first and "the first address" is Addr2; a test
// that names an address should name Host.NotFirst() (Addr1 here), or set
// Options.ReverseAddrOrder to flip it, so its result cannot be a lucky
// default.
//
// etcd is the embedded one on a unix socket (reachable from every netns);
// StopEtcd/StartEtcd simulate an outage.
// Daemons run as `nsenter --net=/var/run/netns/<host> vxlan6d run ...` with
// the host's own subnet file; containers are added with libcni through the
// vxlan6 plugin executed in the host's namespace, each host with its own
// subnet file, data dir and bridge name.
//
// Everything is removed in t.Cleanup, also when the test fails: containers
// are deleted, daemons killed (their logs dumped into the test log on
// failure, together with each host's links, routes and fdb), namespaces
// deleted (which deletes their links), temp dirs removed.
package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/testbed/topology"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/overlay/etcdserver"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// Defaults of the network config helpers (the one lab definition lives in
// package topology, shared with scripts/testbed.sh).
const (
	IPv6Network   = topology.IPv6Network
	IPv6SubnetLen = topology.IPv6SubnetLen
	IPv4Network   = topology.IPv4Network
	IPv4SubnetLen = topology.IPv4SubnetLen
	VNI           = topology.VNI
	Port          = topology.Port
	// Device is the VXLAN device name the daemon creates for VNI.
	Device = "vxlan6.1"
	// Uplink is the name of every host's underlay interface.
	Uplink = topology.Uplink
)

// Router is the switch's address, every host's IPv6 default gateway.
var Router = topology.Router

// Options shape a Bed.
type Options struct {
	// Hosts to create at once (more can be added with AddHost).
	Hosts int
	// ReverseAddrOrder adds Addr2 before Addr1 on every uplink, so the
	// kernel lists Addr1 first.
	ReverseAddrOrder bool
	// Prefix is the etcd prefix; default lease.DefaultPrefix.
	Prefix string
	// CNIVersion of the conflist used by AddContainer; default "1.0.0".
	CNIVersion string
	// PluginExtra are more keys of the vxlan6 plugin config (e.g. "mtu",
	// "ipMasq"); they override the per-host defaults of the same name.
	PluginExtra map[string]any
}

// Bed is one lab: a switch, hosts, an etcd.
type Bed struct {
	T      testing.TB
	Name   string // unique prefix of every namespace of this bed
	Dir    string // temp dir holding per-host state
	Switch string // switch netns name
	Etcd   *testutil.Etcd
	Prefix string
	Hosts  []*Host

	DaemonBin string
	PluginBin string
	opts      Options
	real      RealOptions // what NewRealHosts asked for (zero for New)
	etcdUp    bool
}

// New builds a switch, o.Hosts hosts and an etcd. It needs root (skips
// without) and is skipped with -short.
func New(t testing.TB, o Options) *Bed {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-host testbed (namespaces, daemons): skipped with -short")
	}
	testutil.RequireRoot(t)
	if o.Prefix == "" {
		o.Prefix = lease.DefaultPrefix
	}
	if o.CNIVersion == "" {
		o.CNIVersion = "1.0.0"
	}
	b := &Bed{T: t, Name: testutil.UniqueName("vb"), Prefix: o.Prefix, opts: o}
	dir, err := os.MkdirTemp("", "vx6bed-")
	if err != nil {
		t.Fatal(err)
	}
	b.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	b.startEtcd()

	b.Switch = b.Name + "s"
	b.AddNetns(b.Switch)
	b.apply(topology.Switch(b.Switch))
	for i := 0; i < o.Hosts; i++ {
		b.AddHost()
	}
	return b
}

// AddNetns creates a named netns, deleted in Cleanup (cleanups registered
// after it, e.g. a CNI DEL, run before the deletion).
func (b *Bed) AddNetns(name string) {
	b.T.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.T.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	b.T.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			b.T.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
}

// NetnsPath is the bind-mount path of a named netns.
func NetnsPath(name string) string { return "/var/run/netns/" + name }

// Exec runs a command inside netns ns (bounded to 60s) and returns its
// combined output.
func (b *Bed) Exec(ns string, args ...string) (string, error) {
	return ExecTimeout(60*time.Second, ns, args...)
}

// ExecTimeout runs a command inside netns ns via nsenter (not `ip netns
// exec`, which remounts /sys and hides the cgroup mounts runtimes need).
// /sys therefore still shows the test's own namespace: read link state with
// ip, not from /sys/class/net.
func ExecTimeout(d time.Duration, ns string, args ...string) (string, error) {
	return ExecEnv(d, nil, ns, args...)
}

// ExecEnv is ExecTimeout with env added to the test's environment.
func ExecEnv(d time.Duration, env []string, ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	full := append([]string{"--net=" + NetnsPath(ns), "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %s)", err, d)
		}
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", ns, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (b *Bed) MustExec(ns string, args ...string) string {
	b.T.Helper()
	out, err := b.Exec(ns, args...)
	if err != nil {
		b.T.Fatal(err)
	}
	return out
}

// EtcdFlags are the flags that point vxlan6d at this bed's etcd.
func (b *Bed) EtcdFlags() []string {
	return []string{"--etcd-endpoints", strings.Join(b.Etcd.Endpoints, ","), "--etcd-prefix", b.Prefix}
}

// startEtcd is testutil.StartEtcd, except that the member can be stopped
// and restarted (embed.Etcd.Close must not run twice).
func (b *Bed) startEtcd() {
	t := b.T
	t.Helper()
	sock := filepath.Join(b.Dir, "etcd.sock")
	b.Etcd = &testutil.Etcd{Endpoints: []string{"unix://" + sock}, SockPath: sock}
	b.StartEtcd()
	t.Cleanup(b.StopEtcd)
	cli, err := clientv3.New(clientv3.Config{Endpoints: b.Etcd.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	b.Etcd.Client = cli
}

// StopEtcd stops the bed's etcd (an outage); StartEtcd brings it back with
// the same data and socket. Clients (the daemons, Client()) reconnect by
// themselves.
func (b *Bed) StopEtcd() {
	b.T.Helper()
	if b.etcdUp {
		b.etcdUp = false
		b.Etcd.Server.Close()
	}
}

// StartEtcd restarts the etcd stopped by StopEtcd (New starts it the same
// way the first time).
func (b *Bed) StartEtcd() {
	b.T.Helper()
	if b.etcdUp {
		return
	}
	srv, err := etcdserver.Start(etcdserver.Config{
		DataDir:    filepath.Join(b.Dir, "etcd"),
		ClientURLs: b.Etcd.Endpoints,
		NoFsync:    true,
	})
	if err != nil {
		b.T.Fatalf("start embedded etcd: %v", err)
	}
	b.Etcd.Server = srv
	b.etcdUp = true
}

// Client is the bed's etcd client.
func (b *Bed) Client() *clientv3.Client { return b.Etcd.Client }

// Registry is a lease.Registry on the bed's etcd and prefix.
func (b *Bed) Registry() *lease.Registry { return lease.New(b.Etcd.Client, b.Prefix) }

// ConfigJSON is a network config with the package defaults; dual adds IPv4.
func ConfigJSON(dual bool) string { return topology.ConfigJSON(dual) }

// apply runs topology steps, failing the test on the first error.
func (b *Bed) apply(steps []topology.Step) {
	b.T.Helper()
	for _, s := range steps {
		b.MustExec(s.NS, s.Args...)
	}
}

// PutConfig writes raw JSON to <prefix>/config, unvalidated (tests of bad
// configs use it too).
func (b *Bed) PutConfig(raw string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Etcd.Client.Put(ctx, b.Registry().ConfigKey(), raw); err != nil {
		b.T.Fatalf("put network config: %v", err)
	}
}

// PutIPv6Config writes the default IPv6-only config.
func (b *Bed) PutIPv6Config() { b.T.Helper(); b.PutConfig(ConfigJSON(false)) }

// Keys returns every key under the bed's prefix (to prove nothing was written).
func (b *Bed) Keys() []string {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.Etcd.Client.Get(ctx, b.Prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		b.T.Fatalf("list keys: %v", err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// Leases lists the valid leases (as the daemon sees them) via lease.Registry.
func (b *Bed) Leases() []lease.Lease {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := b.Registry()
	cfg, err := reg.GetConfig(ctx)
	if err != nil {
		b.T.Fatalf("read config: %v", err)
	}
	snap, err := reg.List(ctx, cfg)
	if err != nil {
		b.T.Fatalf("list leases: %v", err)
	}
	return snap.Leases
}

// LeaseFor returns the lease keyed by vtep, or nil.
func (b *Bed) LeaseFor(vtep net.IP) *lease.Lease {
	b.T.Helper()
	for _, l := range b.Leases() {
		if l.VTEP.Equal(vtep) {
			return &l
		}
	}
	return nil
}

// Eventually polls f every interval until it returns nil or timeout passes;
// it returns f's last error.
func Eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Ping sends count pings (0.2s apart, bounded) from netns ns to dst and
// returns ping's output; the error says how many were lost.
func (b *Bed) Ping(ns string, dst net.IP, count int) (string, error) {
	fam := "-6"
	if dst.To4() != nil {
		fam = "-4"
	}
	deadline := fmt.Sprint(count/5 + 5)
	return ExecTimeout(time.Duration(count/5+15)*time.Second, ns, "ping", fam, "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", "-w", deadline, dst.String())
}

// dumpState logs what a failing test needs to see about a netns.
func (b *Bed) dumpState(ns string) {
	var sb strings.Builder
	for _, c := range [][]string{
		{"ip", "-d", "link", "show"},
		{"ip", "addr", "show"},
		{"ip", "-6", "route", "show"},
		{"ip", "-4", "route", "show"},
		{"ip", "-6", "neigh", "show"},
		{BridgeCmd, "fdb", "show", "dev", Device},
	} {
		out, _ := ExecTimeout(10*time.Second, ns, c...)
		fmt.Fprintf(&sb, "$ %s\n%s", strings.Join(c, " "), out)
	}
	b.T.Logf("state of netns %s:\n%s", ns, sb.String())
}
