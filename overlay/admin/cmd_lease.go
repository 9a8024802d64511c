package admin

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
)

func (c *cli) leaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "delete a lease or reserve a subnet for a VTEP",
		Args:  c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.usageErr(cmd, fmt.Errorf("want 'lease delete VTEP' or 'lease reserve VTEP SUBNET'"))
		},
	}
	cmd.AddCommand(c.leaseDeleteCmd(), c.leaseReserveCmd())
	return cmd
}

func (c *cli) leaseDeleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete VTEP",
		Short: "delete the lease (or reservation) of VTEP; a live lease only with --force",
		Long: `Delete the lease record of VTEP, e.g. of a host that is gone for good, so
its subnet is free at once instead of when its TTL runs out. A live lease
(its etcd lease still renewed by a running daemon) needs --force: that
daemon takes a subnet again within moments.`,
		Args: c.nArgs(1, 1),
	}
	ec := c.newEtcdCommand(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "delete a live lease too")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		vtep, err := parseVTEP(args[0])
		if err != nil {
			return c.usageErr(cmd, err)
		}
		return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
			key := reg.LeaseKey(vtep)
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return c.fail(cmd, fmt.Errorf("read %s: %w", key, err))
			}
			if len(resp.Kvs) == 0 {
				return c.fail(cmd, fmt.Errorf("no lease for VTEP %s (no key %s)", vtep, key))
			}
			kv := resp.Kvs[0]
			if kv.Lease != 0 && !force {
				if t, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err != nil || t.TTL >= 0 {
					left := "unknown"
					if err == nil {
						left = (time.Duration(t.TTL) * time.Second).String()
					}
					return c.fail(cmd, fmt.Errorf("the lease of VTEP %s is live (TTL left %s): its daemon renews it and will take a subnet again; use --force to delete it anyway", vtep, left))
				}
			}
			tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).Then(clientv3.OpDelete(key)).Commit()
			if err != nil {
				return c.fail(cmd, fmt.Errorf("delete %s: %w", key, err))
			}
			if !tr.Succeeded {
				return c.fail(cmd, fmt.Errorf("%s changed while deleting it; look again with 'vxlan6d leases'", key))
			}
			kind := "lease"
			if kv.Lease == 0 {
				kind = "reservation"
			}
			fmt.Fprintf(c.stdout, "%s of VTEP %s deleted (%s)\n", kind, vtep, key)
			return nil
		})
	}
	return cmd
}

// reserveArgs are the parsed arguments of 'lease reserve'.
type reserveArgs struct {
	vtep    net.IP
	subnets ipnet.Subnets
	node    string
	force   bool
	s4Flag  string
}

func (c *cli) leaseReserveCmd() *cobra.Command {
	var ra reserveArgs
	cmd := &cobra.Command{
		Use:   "reserve VTEP SUBNET",
		Short: "reserve an IPv6 subnet (and --ipv4-subnet) for the node with VTEP",
		Long: `Write a lease record without a TTL: the node whose VTEP is VTEP gets SUBNET
(and --ipv4-subnet in a dual-stack network) whenever it starts, and the
record never expires. SUBNET must lie in the network with the configured
length and be held by no other VTEP. Reserving another subnet for a VTEP
that holds a live lease renumbers that node and needs --force.
'vxlan6d lease delete VTEP' removes a reservation.`,
		Args: c.nArgs(2, 2),
	}
	ec := c.newEtcdCommand(cmd)
	fs := cmd.Flags()
	fs.StringVar(&ra.s4Flag, "ipv4-subnet", "", "IPv4 subnet (dual-stack networks)")
	fs.StringVar(&ra.node, "node", "", "node name written into the record (default: the current lease's)")
	fs.BoolVar(&ra.force, "force", false, "replace a live lease with a different subnet")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var err error
		if ra.vtep, err = parseVTEP(args[0]); err != nil {
			return c.usageErr(cmd, err)
		}
		cli, reg, err := ec.connect(cmd)
		if err != nil {
			return err
		}
		defer cli.Close()
		if err := c.reserve(cli, reg, &ra, args[1]); err != nil {
			return c.fail(cmd, err)
		}
		fmt.Fprintf(c.stdout, "VTEP %s reserved %s", ra.vtep, ra.subnets.V6)
		if ra.subnets.V4 != nil {
			fmt.Fprintf(c.stdout, " and %s", ra.subnets.V4)
		}
		fmt.Fprintf(c.stdout, " (%s)\n", reg.LeaseKey(ra.vtep))
		return nil
	}
	return cmd
}

// reserve checks the subnets against the config and the other leases and
// writes the record in one transaction that fails if any lease changed
// since they were read.
func (c *cli) reserve(cli *clientv3.Client, reg *lease.Registry, ra *reserveArgs, subnet string) error {
	ctx, cancel := opContext()
	defer cancel()
	cfg, err := reg.GetConfig(ctx)
	if err != nil {
		return fmt.Errorf("read network config: %w", err)
	}
	if ra.subnets.V6, err = subnetIn("SUBNET", subnet, cfg.Networks.V6, cfg.SubnetLen.V6); err != nil {
		return err
	}
	if ra.s4Flag != "" {
		if !cfg.DualStack() {
			return fmt.Errorf("--ipv4-subnet %s: the network is IPv6-only", ra.s4Flag)
		}
		if ra.subnets.V4, err = subnetIn("--ipv4-subnet", ra.s4Flag, cfg.Networks.V4, cfg.SubnetLen.V4); err != nil {
			return err
		}
	}
	snap, err := reg.List(ctx, cfg)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	key := reg.LeaseKey(ra.vtep)
	var own *lease.Lease
	for i := range snap.Leases {
		l := &snap.Leases[i]
		if l.VTEP.Equal(ra.vtep) {
			own = l
			continue
		}
		if ipnet.Same(l.Subnets.V6, ra.subnets.V6) || (ra.subnets.V4 != nil && ipnet.Same(l.Subnets.V4, ra.subnets.V4)) {
			return fmt.Errorf("%s is held by VTEP %s (node %s)", subnetOf(l, ra), l.VTEP, dash(l.NodeName))
		}
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(reg.LeasesPrefix()), "<", snap.Revision+1).WithPrefix()}
	rec := &lease.Lease{VTEP: ra.vtep, Subnets: ra.subnets, VtepMAC: vxlan.MACFor(ra.vtep), NodeName: ra.node}
	if own != nil {
		if !own.Reserved && !ra.force && (!ipnet.Same(own.Subnets.V6, ra.subnets.V6) || (ra.subnets.V4 != nil && !ipnet.Same(own.Subnets.V4, ra.subnets.V4))) {
			return fmt.Errorf("VTEP %s holds a lease of %s (node %s); reserving another subnet renumbers that node: use --force", ra.vtep, own.Subnets.V6, dash(own.NodeName))
		}
		if rec.NodeName == "" {
			rec.NodeName = own.NodeName
		}
		rec.PublicIPv4 = own.PublicIPv4
	}
	// The readers' own rules: a record every daemon would skip as invalid
	// (VTEP inside the pod network, site-local, an overlong node name) is
	// refused here rather than written and ignored.
	if err := lease.CheckRecord(cfg, rec); err != nil {
		return fmt.Errorf("no daemon would accept this reservation: %w", err)
	}
	value, err := lease.MarshalRecord(rec)
	if err != nil {
		return err
	}
	tr, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(value))).Commit()
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if !tr.Succeeded {
		return fmt.Errorf("the leases changed while reserving; try again")
	}
	return nil
}

func subnetOf(l *lease.Lease, ra *reserveArgs) string {
	if ipnet.Same(l.Subnets.V6, ra.subnets.V6) {
		return ra.subnets.V6.String()
	}
	return ra.subnets.V4.String()
}

// subnetIn parses s as a subnet of exactly bits bits inside network.
func subnetIn(what, s string, network *net.IPNet, bits int) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, s, err)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("%s %s has host bits set (want %s)", what, s, n)
	}
	ones, total := n.Mask.Size()
	nOnes, nTotal := network.Mask.Size()
	if total != nTotal || ones != bits || ones < nOnes || !network.Contains(n.IP) {
		return nil, fmt.Errorf("%s %s is not a /%d inside the network %s", what, s, bits, network)
	}
	return n, nil
}
