package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testpki"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// secureBed is a bed whose etcd is `vxlan6d etcd` processes demanding
// client certificates, with auth on and the daemons logged in as a user
// whose role reads and writes <prefix>/ only.
func secureBed(t *testing.T, hosts, members int, tokenTTL time.Duration) (*testbed.Bed, *testbed.EtcdCluster) {
	t.Helper()
	b := testbed.New(t, testbed.Options{Hosts: hosts, ReverseAddrOrder: true})
	c := b.StartEtcdCluster(testbed.EtcdClusterOptions{Members: members, TLS: true, Auth: true, AuthTokenTTL: tokenTTL})
	b.PutIPv6Config()
	return b, c
}

// leaseIDs maps node name to its etcd lease.
func leaseIDs(b *testbed.Bed) map[string]clientv3.LeaseID {
	m := map[string]clientv3.LeaseID{}
	for _, l := range b.Leases() {
		m[l.NodeName] = l.EtcdLease
	}
	return m
}

// TestEtcdTLSRBACPastTokenTTL: against etcd processes that demand client
// certificates, with auth enabled and the daemons logged in as a user
// limited to the prefix (password from a 0600 file, never in argv), the
// daemons run well past the auth token's TTL: each keeps its lease (same
// etcd lease, renewed), pods reach across hosts, a host joins, and the
// admin commands work with the password from VXLAN6D_ETCD_PASSWORD or a
// systemd credential.
func TestEtcdTLSRBACPastTokenTTL(t *testing.T) {
	t.Parallel()
	tokenTTL := 2 * time.Second
	b, c := secureBed(t, 3, 1, tokenTTL)
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	// A resync every 5s makes unary requests with a token idle for longer
	// than its TTL, on top of the lease and watch streams.
	flags := append(c.ClientFlags(), "--lease-ttl", "6s", "--resync-interval", "5s")
	for _, h := range []*testbed.Host{h1, h2} {
		h.StartDaemon(flags...)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		h.Daemon().WaitReady(readyTimeout)
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(h.Daemon().PID()) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cmdline), c.Password) {
			t.Errorf("the etcd password is in the argv of vxlan6d on %s", h.Name)
		}
	}
	before := leaseIDs(b)
	if len(before) != 2 {
		t.Fatalf("want 2 leases, got %v", before)
	}

	past := 8 * tokenTTL
	t.Logf("running %s, past the auth token TTL (%s) and the lease TTL (6s)", past, tokenTTL)
	deadline := time.Now().Add(past)
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for node, id := range before {
			ttl, err := b.Client().TimeToLive(ctx, id)
			if err != nil || ttl.TTL <= 0 {
				t.Errorf("lease of %s (%x) not kept alive: ttl %v, %v", node, id, ttl, err)
			}
		}
		cancel()
	}
	after := leaseIDs(b)
	for node, id := range before {
		if after[node] != id {
			t.Errorf("%s: etcd lease %x replaced by %x past the token TTL", node, id, after[node])
		}
	}
	for _, h := range []*testbed.Host{h1, h2} {
		if log := h.Daemon().Log(); strings.Contains(log, "lease lost") || strings.Contains(log, "invalid auth token") {
			t.Errorf("vxlan6d on %s lost its lease or its login past the token TTL:\n%s", h.Name, log)
		}
	}

	h3.StartDaemon(flags...).WaitReady(readyTimeout)
	cs := []*testbed.Container{h1.AddContainer(), h2.AddContainer(), h3.AddContainer()}
	meshPing(t, targets(cs, false))

	// Admin commands as the prefix-limited user, password not in argv.
	base := append(append([]string{"leases"}, b.EtcdFlags()...), c.ClientFlags()...)
	if out, errOut, code := h1.Run(30*time.Second, nil, base...); code != 0 || strings.Count(out, "fd10:244:") != 3 {
		t.Errorf("vxlan6d leases with --etcd-password-file: exit %d\n%s%s", code, out, errOut)
	}
	noPw := withoutFlag(base, "--etcd-password-file")
	if out, errOut, code := h1.Run(30*time.Second, []string{"VXLAN6D_ETCD_PASSWORD=" + c.Password}, noPw...); code != 0 {
		t.Errorf("vxlan6d leases with VXLAN6D_ETCD_PASSWORD: exit %d\n%s%s", code, out, errOut)
	}
	// With client certificates demanded, etcd also takes the certificate's
	// common name as the user: no password at all.
	certOnly := withoutFlag(withoutFlag(base, "--etcd-password-file"), "--etcd-username")
	if out, errOut, code := h1.Run(30*time.Second, nil, certOnly...); code != 0 || strings.Count(out, "fd10:244:") != 3 {
		t.Errorf("vxlan6d leases as the certificate's CN %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	}
	// The write side as the prefix-limited user: a node annotation (a
	// compare-and-put transaction under <prefix>/nodes/) and the config;
	// the annotation names another VTEP, so h3's daemon, also that user,
	// moves its lease (a transaction deleting the old key, putting the new).
	userFlags := append(b.EtcdFlags(), c.ClientFlags()...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from, to := h3.VTEP(t), h3.NotFirst()
	if from.Equal(to) {
		t.Fatalf("%s already tunnels from %s: the move would prove nothing", h3.Name, to)
	}
	annotate := []string{"annotate", h3.Name, "team=blue", lease.AnnotationPublicIPv6 + "=" + to.String()}
	if out, errOut, code := h1.Run(30*time.Second, nil, append(annotate, userFlags...)...); code != 0 {
		t.Errorf("vxlan6d annotate as %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	} else if ann, err := b.Registry().NodeAnnotations(ctx, h3.Name); err != nil || ann["team"] != "blue" {
		t.Errorf("annotation written as %s: %v %v", testbed.EtcdUser, ann, err)
	}
	if err := testbed.Eventually(testbed.PeerTimeout, 200*time.Millisecond, func() error {
		if b.LeaseFor(to) == nil || b.LeaseFor(from) != nil {
			return fmt.Errorf("lease of %s not moved from %s to %s: %v", h3.Name, from, to, b.Leases())
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	meshPing(t, targets(cs, false))
	if out, errOut, code := h1.Run(30*time.Second, nil, append([]string{"config", "get"}, userFlags...)...); code != 0 || !strings.Contains(out, testbed.IPv6Network) {
		t.Errorf("vxlan6d config get as %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	}
	if out, errOut, code := h1.Run(30*time.Second, nil, append([]string{"nodes", "-o", "wide"}, userFlags...)...); code != 0 || !strings.Contains(out, h3.Name) || !strings.Contains(out, "team=blue") {
		t.Errorf("vxlan6d nodes as %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	}
	rbacReserveAndDelete(t, b, h1, userFlags)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "etcd-password"), []byte(c.Password), 0o400); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := h1.Run(30*time.Second, []string{"CREDENTIALS_DIRECTORY=" + creds}, noPw...); code != 0 {
		t.Errorf("vxlan6d leases with the systemd credential: exit %d\n%s%s", code, out, errOut)
	}
}

// rbacReserveAndDelete: 'lease reserve' (a compare-and-put guarded by the
// whole leases prefix) and 'lease delete' of that reservation (a read and a
// compare-and-delete) as the prefix-limited user, on a VTEP no host has and
// a subnet no lease holds.
func rbacReserveAndDelete(t *testing.T, b *testbed.Bed, h *testbed.Host, userFlags []string) {
	t.Helper()
	vtep := net.ParseIP("2001:db8:ffff::99")
	held := map[string]bool{}
	for _, l := range b.Leases() {
		held[l.Subnets.V6.String()] = true
	}
	subnet := ""
	for i := 0xffff; subnet == "" || held[subnet]; i-- {
		subnet = fmt.Sprintf("fd10:244:0:%x::/64", i)
	}
	reserve := append([]string{"lease", "reserve", "--node", "rbac", vtep.String(), subnet}, userFlags...)
	if out, errOut, code := h.Run(30*time.Second, nil, reserve...); code != 0 {
		t.Errorf("vxlan6d lease reserve as %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	} else if l := b.LeaseFor(vtep); l == nil || !l.Reserved || l.Subnets.V6.String() != subnet {
		t.Errorf("reservation written as %s: %+v", testbed.EtcdUser, l)
	}
	if out, errOut, code := h.Run(30*time.Second, nil, append([]string{"lease", "delete", vtep.String()}, userFlags...)...); code != 0 {
		t.Errorf("vxlan6d lease delete as %s: exit %d\n%s%s", testbed.EtcdUser, code, out, errOut)
	} else if l := b.LeaseFor(vtep); l != nil {
		t.Errorf("reservation deleted as %s is still there: %+v", testbed.EtcdUser, l)
	}
}

// withoutFlag drops a flag and its value from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestEtcdTLSAndCredentialsRefused: a wrong CA, or no client certificate,
// is reported as the TLS failure it is (in the daemon's log and the admin
// command's exit message), and a password is never sent over a cleartext
// endpoint: vxlan6d refuses to start, naming the endpoint.
func TestEtcdTLSAndCredentialsRefused(t *testing.T) {
	t.Parallel()
	b, c := secureBed(t, 1, 1, 0)
	h := b.Hosts[0]
	other := testpki.NewCA(t, t.TempDir(), "other")
	ep := c.Members[0].ClientURL

	d := h.StartDaemon(append(c.ClientFlags(), "--etcd-cafile", other.CertFile)...)
	if err := d.WaitLog("x509", 60*time.Second); err != nil {
		t.Errorf("wrong CA: the daemon's log does not say x509: %v", err)
	}
	if strings.Contains(d.Log(), testbed.ReadyMsg) {
		t.Error("the daemon became ready with a wrong CA")
	}
	d.Kill()

	admin := append([]string{"leases"}, b.EtcdFlags()...)
	wrongCA := append(append(admin, c.ClientFlags()...), "--etcd-cafile", other.CertFile)
	if _, errOut, code := h.Run(60*time.Second, nil, wrongCA...); code != 1 || !strings.Contains(errOut, "x509") || !strings.Contains(errOut, ep) {
		t.Errorf("leases with a wrong CA: exit %d, want 1 and a message naming %s and x509: %s", code, ep, errOut)
	} else {
		t.Logf("wrong CA: %s", strings.TrimSpace(errOut))
	}
	noCert := append(admin, "--etcd-cafile", c.CA.CertFile, "--etcd-username", testbed.EtcdUser, "--etcd-password-file", c.PasswordFile)
	if _, errOut, code := h.Run(60*time.Second, nil, noCert...); code != 1 || !strings.Contains(errOut, "certificate required") {
		t.Errorf("leases without a client certificate: exit %d, want 1 and 'certificate required': %s", code, errOut)
	}

	// Cleartext: refused before any connection, naming the endpoint.
	clear := "http://[" + c.Members[0].Addr.String() + "]:2379"
	login := []string{"--etcd-username", testbed.EtcdUser, "--etcd-password-file", c.PasswordFile}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"run, password file", nil, append([]string{"run", "--etcd-endpoints", clear, "--node-name", h.Name, "--subnet-file", h.SubnetFile}, login...), clear},
		{"run, VXLAN6D_ETCD_PASSWORD", []string{"VXLAN6D_ETCD_PASSWORD=" + c.Password}, []string{"run", "--etcd-endpoints", clear, "--etcd-username", testbed.EtcdUser, "--node-name", h.Name}, clear},
		{"leases, mixed TLS and cleartext", nil, []string{"leases", "--etcd-endpoints", ep + "," + clear, "--etcd-cafile", c.CA.CertFile, "--etcd-certfile", c.UserCert.CertFile, "--etcd-keyfile", c.UserCert.KeyFile}, clear},
		{"leases, bare host:port", nil, append([]string{"leases", "--etcd-endpoints", "[" + c.Members[0].Addr.String() + "]:2379"}, login...), c.Members[0].Addr.String()},
	} {
		_, errOut, code := h.Run(30*time.Second, tc.env, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want 2 and a message naming %s: %s", tc.name, code, tc.want, errOut)
		} else {
			t.Logf("%s: %s", tc.name, strings.TrimSpace(strings.SplitN(errOut, "\n", 2)[0]))
		}
	}
	if _, err := os.Stat(h.SubnetFile); err == nil {
		t.Error("a refused daemon wrote the subnet file")
	}
}

// TestEtcdClusterLeaderKilled: a 3-member etcd (separate `vxlan6d etcd`
// processes, TLS and auth) loses its leader to SIGKILL while pods ping
// across hosts: no echo is lost, the daemons stay, and a host that joins
// afterwards gets a subnet and reaches, and is reached by, every pod.
func TestEtcdClusterLeaderKilled(t *testing.T) {
	t.Parallel()
	b, c := secureBed(t, 3, 3, 0)
	h1, h2, h3 := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	flags := append(c.ClientFlags(), "--lease-ttl", "10s")
	for _, h := range []*testbed.Host{h1, h2} {
		h.StartDaemon(flags...)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		h.Daemon().WaitReady(readyTimeout)
	}
	c1, c2 := h1.AddContainer(), h2.AddContainer()
	if err := waitReach(c1.Name, c2.IPv6, meshTimeout); err != nil {
		t.Fatal(err)
	}
	before := leaseIDs(b)

	leader := c.WaitLeader(30 * time.Second)
	tr := c1.StartPing(c2.IPv6, 75) // 15 s at 5/s
	tr2 := c2.StartPing(c1.IPv6, 75)
	time.Sleep(2 * time.Second)
	t.Logf("killing the etcd leader %s", leader.Name)
	leader.Kill()
	next := c.WaitLeader(60 * time.Second)
	t.Logf("new leader %s", next.Name)
	for _, x := range []*testbed.Traffic{tr, tr2} {
		if out, err := x.Wait(); err != nil {
			t.Errorf("echoes lost while the etcd leader died: %v\n%s", err, out)
		} else {
			t.Logf("no loss: %s", lossLine(out))
		}
	}
	for _, h := range []*testbed.Host{h1, h2} {
		if h.Daemon().Exited() {
			t.Errorf("vxlan6d on %s exited after the leader died: %v", h.Name, h.Daemon().ExitErr())
		}
	}

	h3.StartDaemon(flags...).WaitReady(readyTimeout)
	if cfg := h3.WaitSubnetFile(readyTimeout); cfg.Subnets.V6 == nil {
		t.Fatalf("%s joined without an IPv6 subnet", h3.Name)
	}
	c3 := h3.AddContainer()
	meshPing(t, targets([]*testbed.Container{c1, c2, c3}, false))
	after := leaseIDs(b)
	for node, id := range before {
		if after[node] != id {
			t.Errorf("%s: etcd lease %x became %x: it was lost while the leader died", node, id, after[node])
		}
	}
}
