package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vxlan6/vxlan6/internal/testpki"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// EtcdClusterOptions shape an etcd served by separate `vxlan6d etcd`
// processes (the repo's binary) in the bed's switch namespace, instead of
// the bed's embedded one.
type EtcdClusterOptions struct {
	// Members of the cluster; default 1.
	Members int
	// TLS serves clients https:// only and demands a client certificate
	// signed by the cluster's CA (--client-cert-auth).
	TLS bool
	// Auth (needs TLS) enables etcd auth with a root user and role and a
	// user EtcdUser whose role may read and write <prefix>/ only.
	Auth bool
	// AuthTokenTTL is the members' --auth-token-ttl (0: etcd's 5m).
	AuthTokenTTL time.Duration
}

// EtcdUser is the prefix-limited etcd user the daemons log in as.
const EtcdUser = "vxlan6"

// EtcdMember is one `vxlan6d etcd` process.
type EtcdMember struct {
	Name string
	// Addr is the member's address on the switch bridge, reachable from
	// every host of the bed; ClientURL (https:// with TLS) and PeerURL
	// listen on it.
	Addr      net.IP
	ClientURL string
	PeerURL   string
	// SockURL is a unix socket (unixs:// with TLS) in the bed's directory:
	// how the test process, outside every netns, reaches the member.
	SockURL string
	Args    []string
	LogPath string
	// Proc is the running process (nil before StartEtcdCluster starts
	// it): Proc.Signal(syscall.SIGSTOP) freezes the member.
	Proc *Proc
}

// EtcdCluster is the bed's etcd once StartEtcdCluster ran.
type EtcdCluster struct {
	Bed     *Bed
	Opts    EtcdClusterOptions
	Members []*EtcdMember
	// CA signs every certificate; UserCert is EtcdUser's client
	// certificate (CN=EtcdUser), RootCert root's. Nil/empty without TLS.
	CA       *testpki.CA
	UserCert testpki.Pair
	RootCert testpki.Pair
	// Password of EtcdUser, also in PasswordFile (mode 0600).
	Password, PasswordFile string
	RootPassword           string
	// Client is a root client on the members' sockets (also Bed.Client()).
	Client *clientv3.Client
	dir    string
}

// StartEtcdCluster replaces the bed's embedded etcd by o.Members `vxlan6d
// etcd` processes on the switch (addresses 2001:db8:1::ec<i>), waits until
// the cluster serves, sets up auth if asked, and points the bed at it:
// Bed.EtcdFlags names the members' client URLs, Bed.Client() is a root
// client, so PutConfig, Leases etc. work as before. Daemons and admin
// commands also need ClientFlags (TLS files, user, password file), e.g.
// b.StartDaemons(timeout, func(*Host) []string { return c.ClientFlags() }).
// Bed.StopEtcd/StartEtcd no longer apply: use the members' Kill/Stop.
func (b *Bed) StartEtcdCluster(o EtcdClusterOptions) *EtcdCluster {
	t := b.T
	t.Helper()
	if o.Members == 0 {
		o.Members = 1
	}
	if o.Auth && !o.TLS {
		t.Fatal("StartEtcdCluster: Auth needs TLS (vxlan6d refuses to send a password in clear)")
	}
	b.StopEtcd()
	c := &EtcdCluster{Bed: b, Opts: o, dir: filepath.Join(b.Dir, "etcdc")}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if o.TLS {
		c.CA = testpki.NewCA(t, c.dir, "ca")
		c.UserCert = c.CA.Client(t, EtcdUser)
		c.RootCert = c.CA.Client(t, "root")
	}
	var initial []string
	for i := 1; i <= o.Members; i++ {
		m := c.newMember(i)
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		c.start(m, strings.Join(initial, ","))
	}
	c.Client = c.client("", "", c.RootCert)
	c.waitServing()
	if o.Auth {
		c.enableAuth()
	}
	b.Etcd.Endpoints = c.ClientURLs()
	b.Etcd.Client = c.Client
	return c
}

func (c *EtcdCluster) newMember(i int) *EtcdMember {
	b := c.Bed
	m := &EtcdMember{Name: fmt.Sprintf("m%d", i), Addr: net.ParseIP(fmt.Sprintf("2001:db8:1::ec%d", i))}
	b.MustExec(b.Switch, "ip", "addr", "add", m.Addr.String()+"/64", "dev", "br0", "nodad")
	scheme, sockScheme := "http", "unix"
	if c.Opts.TLS {
		scheme, sockScheme = "https", "unixs"
	}
	sock := fmt.Sprintf("etcd%d.sock", i)
	m.ClientURL = fmt.Sprintf("%s://[%s]:2379", scheme, m.Addr)
	m.PeerURL = fmt.Sprintf("http://[%s]:2380", m.Addr)
	m.SockURL = sockScheme + "://" + filepath.Join(c.dir, sock)
	m.LogPath = filepath.Join(c.dir, m.Name+".log")
	m.Args = []string{"etcd", "--name", m.Name, "--data-dir", filepath.Join(c.dir, m.Name),
		"--listen-client-urls", m.ClientURL + "," + m.SockURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--unsafe-no-fsync"}
	if c.Opts.TLS {
		// The etcd client checks a unixs:// server by the socket's file name.
		p := c.CA.Server(b.T, m.Name, []net.IP{m.Addr}, sock)
		m.Args = append(m.Args, "--cert-file", p.CertFile, "--key-file", p.KeyFile,
			"--trusted-ca-file", c.CA.CertFile, "--client-cert-auth")
	}
	if c.Opts.AuthTokenTTL > 0 {
		m.Args = append(m.Args, "--auth-token-ttl", c.Opts.AuthTokenTTL.String())
	}
	return m
}

// start launches a member's process in the switch netns; it is killed in
// Cleanup and its log dumped if the test failed.
func (c *EtcdCluster) start(m *EtcdMember, initial string) {
	b := c.Bed
	t := b.T
	t.Helper()
	if b.DaemonBin == "" {
		b.DaemonBin = testutil.Binary(t, "vxlan6d")
	}
	args := append(append([]string(nil), m.Args...), "--initial-cluster", initial, "--initial-cluster-token", b.Name)
	// Killed in Cleanup, its log shown if the test failed.
	m.Proc = StartProc(t, "etcd member "+m.Name, b.Switch, m.LogPath, nil, 8<<10, append([]string{b.DaemonBin}, args...)...)
	t.Logf("started etcd member %s (pid %d): vxlan6d %s", m.Name, m.Proc.PID(), strings.Join(args, " "))
}

// Kill sends SIGKILL to the member and waits for it to go.
func (m *EtcdMember) Kill() {
	if m.Proc != nil {
		m.Proc.Kill()
	}
}

// Exited reports whether the member's process has ended.
func (m *EtcdMember) Exited() bool { return m.Proc != nil && m.Proc.Exited() }

// ClientURLs are the members' client URLs as the hosts reach them.
func (c *EtcdCluster) ClientURLs() []string {
	var urls []string
	for _, m := range c.Members {
		urls = append(urls, m.ClientURL)
	}
	return urls
}

// ClientFlags are what vxlan6d (run or an admin command) needs besides
// Bed.EtcdFlags to log in as EtcdUser: TLS files and the password file.
func (c *EtcdCluster) ClientFlags() []string {
	var f []string
	if c.Opts.TLS {
		f = append(f, "--etcd-cafile", c.CA.CertFile, "--etcd-certfile", c.UserCert.CertFile, "--etcd-keyfile", c.UserCert.KeyFile)
	}
	if c.Opts.Auth {
		f = append(f, "--etcd-username", EtcdUser, "--etcd-password-file", c.PasswordFile)
	}
	return f
}

// client is a client on the live members' sockets.
func (c *EtcdCluster) client(user, password string, cert testpki.Pair) *clientv3.Client {
	t := c.Bed.T
	t.Helper()
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.SockURL)
	}
	cfg := clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Username: user, Password: password, Logger: zap.NewNop()}
	if c.Opts.TLS {
		info := transport.TLSInfo{CertFile: cert.CertFile, KeyFile: cert.KeyFile, TrustedCAFile: c.CA.CertFile}
		tc, err := info.ClientConfig()
		if err != nil {
			t.Fatalf("etcd client TLS: %v", err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcd client on %v: %v", eps, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// waitServing waits (bounded) until the cluster takes a write.
func (c *EtcdCluster) waitServing() {
	t := c.Bed.T
	t.Helper()
	err := Eventually(90*time.Second, 200*time.Millisecond, func() error {
		for _, m := range c.Members {
			if m.Exited() {
				log, _ := os.ReadFile(m.LogPath)
				t.Fatalf("etcd member %s exited while starting:\n%s", m.Name, Tail(string(log), 4<<10))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.Client.Put(ctx, "/testbed-ready", "1")
		return err
	})
	if err != nil {
		t.Fatalf("etcd cluster of %d not serving: %v", len(c.Members), err)
	}
}

// enableAuth creates root (user and role), a role with readwrite on
// <prefix>/ only and EtcdUser in it, enables auth and replaces Client by a
// root client logged in with its password.
func (c *EtcdCluster) enableAuth() {
	b := c.Bed
	t := b.T
	t.Helper()
	c.RootPassword, c.Password = randomPassword(), randomPassword()
	c.PasswordFile = filepath.Join(c.dir, "etcd-password")
	if err := os.WriteFile(c.PasswordFile, []byte(c.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := c.Client
	prefix := b.Prefix + "/"
	steps := []struct {
		what string
		do   func() error
	}{
		{"user add root", func() error { _, err := cli.UserAdd(ctx, "root", c.RootPassword); return err }},
		{"user grant-role root root", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"role add " + EtcdUser, func() error { _, err := cli.RoleAdd(ctx, EtcdUser); return err }},
		{"role grant-permission " + EtcdUser + " readwrite " + prefix + " --prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, EtcdUser, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"user add " + EtcdUser, func() error { _, err := cli.UserAdd(ctx, EtcdUser, c.Password); return err }},
		{"user grant-role " + EtcdUser + " " + EtcdUser, func() error { _, err := cli.UserGrantRole(ctx, EtcdUser, EtcdUser); return err }},
		{"auth enable", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("etcd %s: %v", s.what, err)
		}
	}
	c.Client = c.client("root", c.RootPassword, c.RootCert)
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Leader returns the live member that leads, or an error.
func (c *EtcdCluster) Leader() (*EtcdMember, error) {
	for _, m := range c.Members {
		if m.Exited() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := c.Client.Status(ctx, m.SockURL)
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no live member of %d leads", len(c.Members))
}

// WaitLeader waits (bounded) until a live member leads and returns it.
func (c *EtcdCluster) WaitLeader(timeout time.Duration) *EtcdMember {
	c.Bed.T.Helper()
	var l *EtcdMember
	err := Eventually(timeout, 200*time.Millisecond, func() (err error) {
		l, err = c.Leader()
		return err
	})
	if err != nil {
		c.Bed.T.Fatal(err)
	}
	return l
}
