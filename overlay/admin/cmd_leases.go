package admin

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// leaseView is one lease as the listing commands show it.
type leaseView struct {
	VTEP        string `json:"vtep"`
	Node        string `json:"node,omitempty"`
	IPv6Subnet  string `json:"ipv6Subnet"`
	IPv4Subnet  string `json:"ipv4Subnet,omitempty"`
	VtepMAC     string `json:"vtepMAC"`
	PublicIPv4  string `json:"publicIPv4,omitempty"`
	Reserved    bool   `json:"reserved"`
	State       string `json:"state"` // live, reserved, expired, unknown
	TTLSeconds  int64  `json:"ttlSeconds,omitempty"`
	EtcdLease   string `json:"etcdLease,omitempty"`
	ModRevision int64  `json:"modRevision"`
}

// ttl is the column text: the remaining TTL, "reserved" or the state.
func (v leaseView) ttl() string {
	if v.State == "live" {
		return (time.Duration(v.TTLSeconds) * time.Second).String()
	}
	return v.State
}

// listLeases reads the config and every valid lease, sorted by VTEP, with
// their remaining TTL.
func listLeases(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) ([]leaseView, *lease.Config, int, error) {
	cfg, err := reg.GetConfig(ctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read network config: %w", err)
	}
	snap, err := reg.List(ctx, cfg)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list leases: %w", err)
	}
	ids := make([]clientv3.LeaseID, 0, len(snap.Leases))
	for _, l := range snap.Leases {
		if !l.Reserved {
			ids = append(ids, l.EtcdLease)
		}
	}
	ttls := leaseTTLs(ctx, cli, ids)
	views := make([]leaseView, 0, len(snap.Leases))
	for _, l := range snap.Leases {
		v := leaseView{VTEP: ipStr(l.VTEP), Node: l.NodeName, IPv6Subnet: netStr(l.Subnets.V6), IPv4Subnet: netStr(l.Subnets.V4),
			VtepMAC: l.VtepMAC.String(), PublicIPv4: ipStr(l.PublicIPv4), Reserved: l.Reserved, ModRevision: l.ModRevision, State: "reserved"}
		if !l.Reserved {
			st := ttls[l.EtcdLease]
			v.State, v.TTLSeconds, v.EtcdLease = st.state, st.ttl, fmt.Sprintf("%x", int64(l.EtcdLease))
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i].VTEP < views[j].VTEP })
	return views, cfg, snap.Skipped, nil
}

func (c *cli) leasesCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "leases",
		Short: "list the subnet leases: VTEP, node, subnets, MAC, TTL",
		Args:  c.noArgs(),
	}
	ec := c.newEtcdCommand(cmd)
	addOutputFlag(cmd.Flags(), &out)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
			views, _, skipped, err := listLeases(ctx, cli, reg)
			if err != nil {
				return c.fail(cmd, err)
			}
			t := &table{header: []string{"VTEP", "NODE", "IPV6 SUBNET", "IPV4 SUBNET", "MAC", "TTL", "PUBLIC IPV4", "ETCD LEASE", "REVISION"}, narrow: 6}
			for _, v := range views {
				t.add(v.VTEP, v.Node, v.IPv6Subnet, v.IPv4Subnet, v.VtepMAC, v.ttl(), v.PublicIPv4, v.EtcdLease, fmt.Sprint(v.ModRevision))
			}
			if err := writeOutput(c.stdout, out, t, views); err != nil {
				return c.fail(cmd, err)
			}
			if skipped > 0 {
				fmt.Fprintf(c.stderr, "%d invalid lease record(s) skipped (see the warnings above)\n", skipped)
			}
			return nil
		})
	}
	return cmd
}

// nodeView is one node: its annotations and the lease(s) naming it.
type nodeView struct {
	Name        string            `json:"name"`
	PublicIPv6  string            `json:"publicIPv6Annotation,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Leases      []leaseView       `json:"leases,omitempty"`
}

func (c *cli) nodesCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "list the nodes: annotations and the leases that name them",
		Args:  c.noArgs(),
	}
	ec := c.newEtcdCommand(cmd)
	addOutputFlag(cmd.Flags(), &out)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
			nodes, skipped, err := listNodes(ctx, cli, reg)
			if err != nil {
				return c.fail(cmd, err)
			}
			t := &table{header: []string{"NODE", "VTEP", "IPV6 SUBNET", "IPV4 SUBNET", "TTL", "PUBLIC-IPV6 ANNOTATION", "ANNOTATIONS"}, narrow: 6}
			for _, n := range nodes {
				var vteps, s6, s4, ttl []string
				for _, l := range n.Leases {
					vteps, s6, s4, ttl = append(vteps, l.VTEP), append(s6, l.IPv6Subnet), append(s4, l.IPv4Subnet), append(ttl, l.ttl())
				}
				var ann []string
				for _, k := range sortedKeys(n.Annotations) {
					ann = append(ann, k+"="+n.Annotations[k])
				}
				t.add(n.Name, join(vteps), join(s6), join(s4), join(ttl), n.PublicIPv6, strings.Join(ann, ","))
			}
			if err := writeOutput(c.stdout, out, t, nodes); err != nil {
				return c.fail(cmd, err)
			}
			for _, s := range skipped {
				fmt.Fprintf(c.stderr, "skipped invalid node record %s\n", s)
			}
			return nil
		})
	}
	return cmd
}

func join(s []string) string {
	var keep []string
	for _, v := range s {
		if v != "" {
			keep = append(keep, v)
		}
	}
	return strings.Join(keep, ",")
}

// listNodes merges <prefix>/nodes/* with the node names of the leases. A
// node record vxlan6d could not have written is left out and returned in
// skipped ("key: reason"): it must not hide the valid nodes from the
// command an operator runs to find it.
func listNodes(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) (nodes []nodeView, skipped []string, err error) {
	leases, _, _, err := listLeases(ctx, cli, reg)
	if err != nil {
		return nil, nil, err
	}
	anns, skipped, err := reg.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*nodeView{}
	get := func(name string) *nodeView {
		if byName[name] == nil {
			byName[name] = &nodeView{Name: name}
		}
		return byName[name]
	}
	for name, ann := range anns {
		n := get(name)
		n.Annotations, n.PublicIPv6 = ann, lease.PublicIPv6Annotation(ann)
	}
	for _, l := range leases {
		n := get(l.Node)
		n.Leases = append(n.Leases, l)
	}
	nodes = make([]nodeView, 0, len(byName))
	for _, k := range sortedKeys(byName) {
		nodes = append(nodes, *byName[k])
	}
	return nodes, skipped, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type ttlState struct {
	state string
	ttl   int64
}

// ttlLookups bounds the TimeToLive requests in flight: etcd has no call
// for many leases' TTLs, and one at a time costs a round trip per node.
const ttlLookups = 16

// leaseTTLs asks etcd for the remaining TTL of each etcd lease once (many
// records may share one), ttlLookups at a time.
func leaseTTLs(ctx context.Context, cli *clientv3.Client, ids []clientv3.LeaseID) map[clientv3.LeaseID]ttlState {
	var uniq []clientv3.LeaseID
	seen := make(map[clientv3.LeaseID]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	states := make([]ttlState, len(uniq))
	var wg sync.WaitGroup
	sem := make(chan struct{}, ttlLookups)
	for i, id := range uniq {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			states[i] = ttlState{state: "expired"}
			if t, err := cli.TimeToLive(ctx, id); err != nil {
				states[i].state = "unknown"
			} else if t.TTL >= 0 {
				states[i] = ttlState{state: "live", ttl: t.TTL}
			}
		}()
	}
	wg.Wait()
	m := make(map[clientv3.LeaseID]ttlState, len(uniq))
	for i, id := range uniq {
		m[id] = states[i]
	}
	return m
}

// parseVTEP reads a VTEP argument (an IPv6 unicast address).
func parseVTEP(s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() != nil {
		return nil, fmt.Errorf("VTEP %q is not an IPv6 address", s)
	}
	if !ip.IsGlobalUnicast() {
		return nil, fmt.Errorf("VTEP %s is not a global unicast address", ip)
	}
	return ip, nil
}
