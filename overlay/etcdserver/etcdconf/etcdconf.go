// Package etcdconf is the configuration of the embedded etcd member
// (package etcdserver), apart from the server itself: the vxlan6d CLI
// parses and checks the flags of `vxlan6d etcd` into it without linking
// etcd's server, which costs every daemon ~7 MiB of RSS (the member runs
// in the separate program vxlan6d-etcd).
package etcdconf

import "time"

// Config describes the member. Zero values get lab-friendly defaults.
type Config struct {
	// DataDir holds the member's WAL and snapshot; created if missing.
	DataDir string
	// ClientURLs the member serves clients on, e.g. "http://[::1]:2379" or
	// "unix:///run/vxlan6/etcd.sock" (a unix socket is reachable from every
	// network namespace, which is what the multi-host testbed uses).
	ClientURLs []string
	// PeerURL for the (unused) raft peer port; default: a free loopback port.
	PeerURL string
	// Name of the member; default "vxlan6".
	Name string
	// StartTimeout bounds the wait for the member to become ready; default 30s.
	StartTimeout time.Duration
	// NoFsync trades durability for speed; tests only.
	NoFsync bool
	// LogLevel of etcd's own logger; default "error" so it does not drown ours.
	LogLevel string

	// TLS for clients: CertFile and KeyFile make the member serve https://
	// (and unixs://) client URLs; TrustedCAFile with ClientCertAuth demands a
	// client certificate signed by that CA.
	CertFile, KeyFile, TrustedCAFile string
	ClientCertAuth                   bool
	// AuthTokenTTL is the idle lifetime of etcd's simple auth tokens once
	// auth is enabled; 0 keeps etcd's default (300s).
	AuthTokenTTL time.Duration

	// Cluster membership (all empty: a member of its own). InitialCluster is
	// etcd's "name=peerURL,..." list naming this member's Name and PeerURL;
	// every member must get the same list and ClusterToken.
	InitialCluster string
	ClusterToken   string
	// AdvertiseClientURLs tell the other members (and clients that sync
	// endpoints) where to reach this one; default: the TCP ClientURLs.
	AdvertiseClientURLs []string
}
