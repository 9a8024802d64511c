// Package lease is the etcd schema of vxlan6 and the operations on it:
// network config, subnet leases keyed by VTEP, node annotations.
//
// API CONTRACT (agreed before implementation; the daemon codes against it).
//
// Keys under the prefix (default /vxlan6/network):
//
//	<prefix>/config               network config JSON (flannel field names)
//	<prefix>/leases/<vtep>        one lease per node, value LeaseRecord JSON,
//	                              bound to an etcd lease with a TTL (none for an
//	                              operator's reservation)
//	<prefix>/nodes/<node-name>    {"annotations": {...}}
package lease

import (
	"context"
	"net"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is the etcd prefix unless --etcd-prefix says otherwise.
const DefaultPrefix = "/vxlan6/network"

// DefaultTTL is the lease TTL unless --lease-ttl says otherwise.
const DefaultTTL = 5 * time.Minute

// Annotation keys.
const (
	AnnotationPublicIPv6        = "vxlan6.io/public-ipv6"
	AnnotationPublicIPv6Flannel = "flannel.alpha.coreos.com/node-public-ipv6"
)

// Backend is the "Backend" object of the network config.
type Backend struct {
	Type string // "vxlan"
	VNI  int    // default 1
	Port int    // default 8472
	MTU  int    // 0 = underlay MTU - 70
}

// Config is the network config at <prefix>/config.
type Config struct {
	EnableIPv6    bool
	EnableIPv4    bool
	IPv6Network   *net.IPNet
	IPv6SubnetLen int
	Network       *net.IPNet // IPv4, only when EnableIPv4
	SubnetLen     int
	Backend       Backend
}

// ParseConfig parses and validates config JSON (bad CIDR, subnet length not
// longer than the network, fewer than 4 subnets, IPv6 disabled, ... are errors
// that name the field).
func ParseConfig(data []byte) (*Config, error) { panic("lease: not implemented") }

// Lease is one node's lease.
type Lease struct {
	VTEP        net.IP     // key; the advertised (public) VTEP
	IPv6Subnet  *net.IPNet // always set
	IPv4Subnet  *net.IPNet // dual-stack only
	VtepMAC     net.HardwareAddr
	NodeName    string
	PublicIPv4  net.IP // informational, may be nil
	Reserved    bool   // written without TTL by an operator
	ModRevision int64
}

// Attrs is what a node asks for when acquiring.
type Attrs struct {
	VTEP       net.IP
	VtepMAC    net.HardwareAddr
	NodeName   string
	PublicIPv4 net.IP
	// Hint subnets (e.g. from the previous subnet file) are tried first when the
	// node holds no lease, so a restart after expiry gets its subnet back.
	HintIPv6 *net.IPNet
	HintIPv4 *net.IPNet
}

// Registry talks to etcd under one prefix.
type Registry struct {
	cli    *clientv3.Client
	prefix string
}

// New returns a Registry; prefix "" means DefaultPrefix.
func New(cli *clientv3.Client, prefix string) *Registry { panic("lease: not implemented") }

// GetConfig reads and parses <prefix>/config; a missing key is ErrNoConfig.
func (r *Registry) GetConfig(ctx context.Context) (*Config, error) { panic("lease: not implemented") }

// WaitConfig blocks until a valid config exists (logging while it waits) or ctx ends.
func (r *Registry) WaitConfig(ctx context.Context) (*Config, error) { panic("lease: not implemented") }

// Acquire gets this node's lease: an existing one for attrs.VTEP (also a
// reservation) is reused with the same subnet(s); otherwise the hint, else a
// free subnet, is taken in one etcd transaction, retried on a lost race.
// Errors say why (e.g. "no free IPv6 subnet left in fd10:244::/48").
func (r *Registry) Acquire(ctx context.Context, cfg *Config, attrs Attrs, ttl time.Duration) (*Lease, error) {
	panic("lease: not implemented")
}

// KeepAlive keeps l's etcd lease alive until ctx ends. When the lease is lost
// (revoked, expired, key deleted) it re-acquires (same subnet if possible) and
// calls onChange with the new lease; it never gives up while ctx lives, and
// retries with backoff while etcd is unreachable.
func (r *Registry) KeepAlive(ctx context.Context, cfg *Config, attrs Attrs, l *Lease, ttl time.Duration, onChange func(*Lease)) {
	panic("lease: not implemented")
}

// Move re-keys this node's lease to a new VTEP keeping its subnet(s), in one
// transaction (used when the public-ipv6 annotation changes).
func (r *Registry) Move(ctx context.Context, cfg *Config, old *Lease, attrs Attrs, ttl time.Duration) (*Lease, error) {
	panic("lease: not implemented")
}

// Snapshot is every valid lease at one revision. Invalid records (bad JSON,
// subnet outside the network, overlapping an earlier lease) are skipped with a
// slog warning; they are counted in Skipped.
type Snapshot struct {
	Leases   []Lease
	Revision int64
	Skipped  int
}

// List reads every lease.
func (r *Registry) List(ctx context.Context, cfg *Config) (*Snapshot, error) {
	panic("lease: not implemented")
}

// EventType says what happened to a lease.
type EventType int

const (
	Added   EventType = iota // created or changed
	Removed                  // deleted or expired
	Resync                   // the watch was reset (compaction, reconnect): the receiver must List again and reconcile fully
)

// Event is one change.
type Event struct {
	Type  EventType
	Lease Lease // for Removed only VTEP is guaranteed
}

// Watch streams lease events after revision rev until ctx ends. Invalid records
// are skipped with a warning. On compaction or a broken watch it sends Resync
// and stops; the caller Lists again and calls Watch from the new revision.
func (r *Registry) Watch(ctx context.Context, cfg *Config, rev int64) <-chan Event {
	panic("lease: not implemented")
}

// NodeAnnotations returns <prefix>/nodes/<node>'s annotations (empty map if none).
func (r *Registry) NodeAnnotations(ctx context.Context, node string) (map[string]string, error) {
	panic("lease: not implemented")
}

// Annotate sets (value != "") or removes (value == "") one annotation.
func (r *Registry) Annotate(ctx context.Context, node, key, value string) error {
	panic("lease: not implemented")
}

// WatchNode sends the node's annotations each time they change, until ctx ends.
func (r *Registry) WatchNode(ctx context.Context, node string) <-chan map[string]string {
	panic("lease: not implemented")
}

// PublicIPv6Annotation picks the public-ipv6 annotation (vxlan6.io first, then the flannel alias).
func PublicIPv6Annotation(ann map[string]string) string {
	if v := ann[AnnotationPublicIPv6]; v != "" {
		return v
	}
	return ann[AnnotationPublicIPv6Flannel]
}
