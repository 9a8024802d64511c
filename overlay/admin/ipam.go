package admin

import (
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/spf13/cobra"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// defaultDataDir is the vxlan6 plugin's default dataDir (conflist key).
const defaultDataDir = "/var/lib/cni/vxlan6"

// allocationView is one IPAM allocation on this host.
type allocationView struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	Addresses   []string `json:"addresses"`
	HostVeth    string   `json:"hostVeth"`
	// State is live while the host end of the container's veth exists
	// (its name derives from container ID and ifname, as the plugin's GC
	// finds it), stale otherwise: the runtime never sent DEL.
	State string `json:"state"`
}

func (c *cli) ipamCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "ipam [list|release]",
		Short: "list or release the vxlan6 plugin's address allocations on this host",
		Long: `List the allocations in the plugin's dataDir (container ID, ifname,
addresses, live or stale) or release one. An allocation is live while the
host end of its veth exists in this network namespace (run it where the
runtime's containers are attached), stale when the runtime never sent DEL.`,
		Args: c.noArgs(),
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir, "the plugin's dataDir (conflist key dataDir)")

	var out outputFormat
	list := &cobra.Command{
		Use:   "list",
		Short: "list allocations: container ID, ifname, addresses, live or stale (the default)",
		Args:  c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			views, err := listAllocations(dataDir)
			if err != nil {
				return c.fail(cmd, err)
			}
			t := &table{header: []string{"CONTAINER ID", "IFNAME", "ADDRESSES", "STATE", "HOST VETH"}, narrow: 4}
			for _, v := range views {
				t.add(v.ContainerID, v.IfName, strings.Join(v.Addresses, ","), v.State, v.HostVeth)
			}
			if err := writeOutput(c.stdout, out, t, views); err != nil {
				return c.fail(cmd, err)
			}
			return nil
		},
	}
	addOutputFlag(cmd.PersistentFlags(), &out)
	// A bare 'vxlan6d ipam' lists.
	cmd.RunE = list.RunE

	var force bool
	release := &cobra.Command{
		Use:   "release CONTAINER-ID IFNAME",
		Short: "release the addresses of one allocation (a live one only with --force)",
		Args:  c.nArgs(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.ipamRelease(cmd, dataDir, args[0], args[1], force)
		},
	}
	release.Flags().BoolVar(&force, "force", false, "release a live allocation too (its container keeps using the address, which may then be given out again)")
	cmd.AddCommand(list, release)
	return cmd
}

// storeExists: ipam.Open creates a missing store, which a command that
// only looks must not do.
func storeExists(dataDir string) error {
	if _, err := os.Stat(dataDir); err != nil {
		return fmt.Errorf("IPAM store %s: %w (wrong --data-dir? the conflist's dataDir says where)", dataDir, err)
	}
	return nil
}

// listAllocations reads the store through ipam.Store.List (the package's
// exported API, so record format changes stay the ipam package's business).
func listAllocations(dataDir string) ([]allocationView, error) {
	if err := storeExists(dataDir); err != nil {
		return nil, err
	}
	s, err := ipam.Open(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open IPAM store %s: %w", dataDir, err)
	}
	defer s.Close()
	allocs, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("list allocations in %s: %w", dataDir, err)
	}
	views := make([]allocationView, 0, len(allocs))
	for _, a := range allocs {
		v := allocationView{ContainerID: a.ContainerID, IfName: a.IfName, HostVeth: link.HostVethName(a.ContainerID, a.IfName), State: "stale"}
		for _, ip := range a.IPs {
			v.Addresses = append(v.Addresses, ip.String())
		}
		if _, err := netlinksafe.LinkByName(v.HostVeth); err == nil {
			v.State = "live"
		}
		views = append(views, v)
	}
	return views, nil
}

func (c *cli) ipamRelease(cmd *cobra.Command, dataDir, id, ifname string, force bool) error {
	if err := storeExists(dataDir); err != nil {
		return c.fail(cmd, err)
	}
	s, err := ipam.Open(dataDir)
	if err != nil {
		return c.fail(cmd, fmt.Errorf("open IPAM store %s: %w", dataDir, err))
	}
	defer s.Close()
	a, err := s.Get(id, ifname)
	if err != nil {
		return c.fail(cmd, fmt.Errorf("read allocation %s/%s: %w", id, ifname, err))
	}
	if a == nil {
		return c.fail(cmd, fmt.Errorf("no allocation for container %s ifname %s in %s", id, ifname, dataDir))
	}
	veth := link.HostVethName(id, ifname)
	if _, err := netlinksafe.LinkByName(veth); err == nil && !force {
		return c.fail(cmd, fmt.Errorf("allocation %s/%s is live (host veth %s exists); use --force to release it anyway", id, ifname, veth))
	}
	if err := s.Release(id, ifname); err != nil {
		return c.fail(cmd, err)
	}
	var addrs []string
	for _, ip := range a.IPs {
		addrs = append(addrs, ip.String())
	}
	fmt.Fprintf(c.stdout, "released %s for container %s ifname %s\n", strings.Join(addrs, ","), id, ifname)
	return nil
}
