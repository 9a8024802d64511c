package admin

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/pflag"

	"github.com/vxlan6/vxlan6/overlay/etcdserver/etcdconf"
)

// DefaultEtcdListen is where `vxlan6d etcd` serves clients unless told
// otherwise: loopback only (the daemon's default endpoint), so a lab etcd
// never offers the cluster's routing state to the network by accident.
const DefaultEtcdListen = "http://127.0.0.1:2379"

// addEtcdServerFlags are the flags of `vxlan6d etcd`, named like etcd's own.
func addEtcdServerFlags(fs *pflag.FlagSet, c *etcdconf.Config) {
	fs.StringVar(&c.DataDir, "data-dir", "", "etcd data directory (required)")
	fs.Var(listFlag{&c.ClientURLs, true}, "listen-client-urls", "client URLs, comma list (default "+DefaultEtcdListen+"; e.g. unix:///run/vxlan6-etcd/etcd.sock, https://[2001:db8::10]:2379)")
	fs.Var(listFlag{&c.AdvertiseClientURLs, true}, "advertise-client-urls", "client URLs announced to the other members (default: the TCP --listen-client-urls)")
	fs.StringVar(&c.Name, "name", "vxlan6", "member name (as in --initial-cluster)")
	fs.StringVar(&c.PeerURL, "listen-peer-urls", "", "this member's peer URL, listened on and advertised (default: a free loopback port; needed with --initial-cluster)")
	fs.StringVar(&c.InitialCluster, "initial-cluster", "", "every member as name=peerURL, comma list (empty: a single member)")
	fs.StringVar(&c.ClusterToken, "initial-cluster-token", "", "token shared by the members of a new cluster")
	fs.StringVar(&c.CertFile, "cert-file", "", "TLS certificate served to clients (https:// client URLs)")
	fs.StringVar(&c.KeyFile, "key-file", "", "key of --cert-file")
	fs.StringVar(&c.TrustedCAFile, "trusted-ca-file", "", "CA that signs the client certificates")
	fs.BoolVar(&c.ClientCertAuth, "client-cert-auth", false, "demand a client certificate signed by --trusted-ca-file")
	fs.BoolVar(&c.NoFsync, "unsafe-no-fsync", false, "do not fsync the data (tests and throwaway labs only: a crash can lose or corrupt data)")
	fs.DurationVar(&c.AuthTokenTTL, "auth-token-ttl", 0, "idle lifetime of auth tokens once auth is enabled (default etcd's 5m)")
}

// checkEtcdServer validates the flags of `vxlan6d etcd` after parsing and
// fills the default listen URL. It returns the cleartext client URLs on
// non-loopback addresses, which the caller warns about.
func checkEtcdServer(c *etcdconf.Config) (exposed []string, err error) {
	if c.DataDir == "" {
		return nil, errors.New("--data-dir is required")
	}
	if len(c.ClientURLs) == 0 {
		c.ClientURLs = []string{DefaultEtcdListen}
	}
	if c.InitialCluster != "" && c.PeerURL == "" {
		return nil, errors.New("--initial-cluster needs --listen-peer-urls (this member's entry in it)")
	}
	for _, s := range c.ClientURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--listen-client-urls: %q: %v", s, err)
		}
		switch u.Scheme {
		case "http":
			if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
				exposed = append(exposed, s)
			}
		case "https", "unix", "unixs":
		default:
			return nil, fmt.Errorf("--listen-client-urls: %q: scheme %q is not http, https, unix or unixs", s, u.Scheme)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("--cert-file and --key-file must be given together")
	}
	if c.ClientCertAuth && c.TrustedCAFile == "" {
		return nil, errors.New("--client-cert-auth needs --trusted-ca-file")
	}
	return exposed, nil
}
