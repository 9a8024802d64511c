package admin

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/vxlan6/vxlan6/ipam"
	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/vxlan"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// statusView is `vxlan6d status`: this node as the subnet file, the
// daemon's status file and the kernel show it, and every peer's lease in
// etcd side by side with the kernel's entries for it.
type statusView struct {
	Node           string       `json:"node,omitempty"`
	VTEP           string       `json:"vtep"`
	Local          string       `json:"local,omitempty"`
	Interface      string       `json:"interface,omitempty"`
	ChosenBy       string       `json:"chosenBy"`
	OperatorChosen bool         `json:"operatorChosen"`
	SubnetV6       string       `json:"subnetV6"`
	SubnetV4       string       `json:"subnetV4,omitempty"`
	Lease          string       `json:"lease"`
	Device         string       `json:"device"`
	DeviceState    string       `json:"deviceState"`
	SubnetFile     string       `json:"subnetFile"`
	MTU            int          `json:"mtu"`
	Peers          []peerStatus `json:"peers"`
	Stray          []string     `json:"stray,omitempty"`
	Problems       []string     `json:"problems,omitempty"`
}

type peerStatus struct {
	VTEP     string       `json:"vtep"`
	Node     string       `json:"node,omitempty"`
	SubnetV6 string       `json:"subnetV6"`
	SubnetV4 string       `json:"subnetV4,omitempty"`
	MAC      string       `json:"mac"`
	FDB      string       `json:"fdb"`
	Neigh    string       `json:"neigh"`
	Route    string       `json:"route"`
	OK       bool         `json:"ok"`
	Probe    *probeResult `json:"probe,omitempty"`
}

type statusOptions struct {
	subnetFile string
	probe      bool
	count      int
	out        outputFormat
}

func (c *cli) statusCmd() *cobra.Command {
	var so statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "this node: VTEP and who chose it, subnets, device, and every peer's lease against the kernel",
		Long: `Show this node as the daemon set it up: the VTEP and how it was chosen
(from the daemon's status file beside the subnet file, ` + "vxlan6d.status.json" + `),
the subnet(s) and MTU from the subnet file, the VXLAN device, and for every
peer its lease in etcd side by side with the kernel's fdb entry, neighbour
and route on the device. Entries that disagree with the lease, and kernel
entries no lease backs, are flagged; the exit code is then 1.

--probe also pings each peer's gateway (its bridge address, the first
address of its subnet) through the overlay and reports loss and RTT.
Run it on the host (or in the network namespace) the daemon runs in, with
the daemon's --subnet-file and etcd settings (the env file has them).`,
		Args: c.noArgs(),
	}
	ec := c.newEtcdCommand(cmd)
	fs := cmd.Flags()
	fs.StringVar(&so.subnetFile, "subnet-file", subnetfile.DefaultPath, "the daemon's subnet file")
	fs.BoolVar(&so.probe, "probe", false, "ping each peer's gateway through the overlay")
	fs.IntVar(&so.count, "probe-count", 5, "echo requests per peer with --probe")
	addOutputFlag(fs, &so.out) // wide is the table: status has no narrow form
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if so.count < 1 || so.count > 100 {
			return c.usageErr(cmd, fmt.Errorf("--probe-count %d: want 1..100", so.count))
		}
		v, err := c.status(cmd, ec, &so)
		if err != nil {
			return err
		}
		if so.out == "json" || so.out == "yaml" {
			if err := writeOutput(c.stdout, so.out, nil, v); err != nil {
				return c.fail(cmd, err)
			}
		} else {
			printStatus(c.stdout, v, so.probe)
		}
		if len(v.Problems) > 0 {
			return c.fail(cmd, fmt.Errorf("%d problem(s): %s", len(v.Problems), strings.Join(v.Problems, "; ")))
		}
		return nil
	}
	return cmd
}

// status gathers the view; only a missing subnet file stops it (there is
// no node to show then), everything else becomes a problem in the view.
func (c *cli) status(cmd *cobra.Command, ec *etcdCommand, so *statusOptions) (*statusView, error) {
	if err := ec.validate(cmd); err != nil {
		return nil, err
	}
	sf, err := subnetfile.Read(so.subnetFile)
	if err != nil {
		return nil, c.fail(cmd, fmt.Errorf("%w (is vxlan6d running here, with this --subnet-file?)", err))
	}
	v := &statusView{VTEP: ipStr(sf.VTEP), SubnetV6: netStr(sf.Subnets.V6), SubnetV4: netStr(sf.Subnets.V4), SubnetFile: so.subnetFile, MTU: sf.MTU,
		ChosenBy: "unknown (no status file)", Lease: "unknown"}
	if st, err := daemon.ReadStatus(daemon.StatusPath(so.subnetFile)); err == nil {
		v.Node, v.Local, v.Interface, v.ChosenBy, v.OperatorChosen, v.Device = st.Node, st.Local, st.Interface, st.Source, st.OperatorChosen, st.Device
		if st.VTEP != v.VTEP {
			v.Problems = append(v.Problems, fmt.Sprintf("status file says VTEP %s, subnet file %s", st.VTEP, v.VTEP))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		v.Problems = append(v.Problems, err.Error())
	}
	cli, reg, err := ec.connect(cmd)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := opContext()
	defer cancel()
	leases, cfg, _, err := listLeases(ctx, cli, reg)
	if err != nil {
		return nil, c.fail(cmd, err)
	}
	if v.Device == "" {
		v.Device = vxlan.DeviceName(cfg.Backend.VNI)
	}
	k, err := readKernel(v.Device)
	if err != nil {
		v.DeviceState = "missing"
		v.Problems = append(v.Problems, err.Error())
		k = &kernelPeers{}
	} else {
		v.DeviceState = deviceState(k.dev)
	}
	v.comparePeers(leases, k)
	if so.probe {
		v.probe(so.count)
	}
	return v, nil
}

func deviceState(l netlink.Link) string {
	a := l.Attrs()
	up := "down"
	if a.Flags&net.FlagUp != 0 {
		up = "up"
	}
	s := fmt.Sprintf("%s, mtu %d", up, a.MTU)
	if vx, ok := l.(*netlink.Vxlan); ok {
		s += fmt.Sprintf(", vni %d, port %d, local %s", vx.VxlanId, vx.Port, ipStr(vx.SrcAddr))
	}
	return s
}

// comparePeers fills Peers (every lease but ours) and Stray (kernel
// entries on the device that no lease backs).
func (v *statusView) comparePeers(leases []leaseView, k *kernelPeers) {
	wantMAC, wantDst := map[string]bool{}, map[string]bool{}
	for _, l := range leases {
		if l.VTEP == v.VTEP {
			v.Lease = l.ttl()
			if l.State == "live" {
				v.Lease = "live, TTL left " + l.ttl()
			}
			continue
		}
		p := peerStatus{VTEP: l.VTEP, Node: l.Node, SubnetV6: l.IPv6Subnet, SubnetV4: l.IPv4Subnet, MAC: l.VtepMAC}
		vtep, mac := net.ParseIP(l.VTEP), parseMAC(l.VtepMAC)
		var pc peerCheck
		if k.dev != nil {
			pc = k.check(vtep, mac, cidr(l.IPv6Subnet), cidr(l.IPv4Subnet))
		} else {
			pc = peerCheck{FDB: "no device", Neigh: "no device", Route: "no device"}
		}
		p.FDB, p.Neigh, p.Route = okIfEmpty(pc.FDB), okIfEmpty(pc.Neigh), okIfEmpty(pc.Route)
		p.OK = pc == peerCheck{}
		if !p.OK {
			v.Problems = append(v.Problems, fmt.Sprintf("peer %s: fdb %s, neigh %s, route %s", l.VTEP, p.FDB, p.Neigh, p.Route))
		}
		v.Peers = append(v.Peers, p)
		wantMAC[l.VtepMAC] = true
		for _, s := range []string{l.IPv6Subnet, l.IPv4Subnet} {
			if s != "" {
				wantDst[s] = true
			}
		}
	}
	if v.Lease == "unknown" {
		v.Problems = append(v.Problems, "no lease in etcd for this node's VTEP "+v.VTEP)
	}
	for _, mac := range sortedKeys(k.fdb) {
		if !wantMAC[mac] {
			v.Stray = append(v.Stray, fmt.Sprintf("fdb %s dst %s", mac, strings.Join(k.fdb[mac], ",")))
		}
	}
	for _, dst := range sortedKeys(k.routes) {
		if !wantDst[dst] {
			v.Stray = append(v.Stray, fmt.Sprintf("route %s via %s", dst, k.routes[dst]))
		}
	}
	for _, s := range v.Stray {
		v.Problems = append(v.Problems, "stray "+s+" (no lease)")
	}
}

func okIfEmpty(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

func cidr(s string) *net.IPNet {
	if s == "" {
		return nil
	}
	_, n, _ := net.ParseCIDR(s)
	return n
}

func parseMAC(s string) net.HardwareAddr {
	m, _ := net.ParseMAC(s)
	return m
}

func printStatus(w io.Writer, v *statusView, probed bool) {
	chosen := v.ChosenBy
	if v.OperatorChosen {
		chosen += ", the operator's choice"
	}
	writeRows(w, [][]string{
		{"node:", v.Node},
		{"vtep:", fmt.Sprintf("%s (%s) on %s, local %s", v.VTEP, chosen, dash(v.Interface), dash(v.Local))},
		{"subnets:", strings.Join(nonEmpty(v.SubnetV6, v.SubnetV4), ", ")},
		{"lease:", v.Lease},
		{"device:", v.Device + " " + v.DeviceState},
		{"subnet file:", fmt.Sprintf("%s (mtu %d)", v.SubnetFile, v.MTU)},
	})
	fmt.Fprintln(w)
	t := &table{header: []string{"PEER VTEP", "NODE", "IPV6 SUBNET", "IPV4 SUBNET", "MAC", "FDB", "NEIGH", "ROUTE", "STATE"}}
	if probed {
		t.header = append(t.header, "PROBE", "LOSS", "RTT AVG")
	}
	for _, p := range v.Peers {
		state := "ok"
		if !p.OK {
			state = "MISMATCH"
		}
		row := []string{p.VTEP, p.Node, p.SubnetV6, p.SubnetV4, p.MAC, p.FDB, p.Neigh, p.Route, state}
		if probed && p.Probe != nil {
			row = append(row, p.Probe.Target, p.Probe.loss(), p.Probe.rtt())
		}
		t.add(row...)
	}
	writeOutput(w, "wide", t, nil)
	for _, s := range v.Stray {
		fmt.Fprintf(w, "STRAY %s (no lease backs it)\n", s)
	}
}

func nonEmpty(s ...string) []string { return strings.Fields(strings.Join(s, " ")) }

// writeRows prints label/value rows aligned.
func writeRows(w io.Writer, rows [][]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %s\n", width, r[0], dash(r[1]))
	}
}

// gatewayOf is the peer's bridge address: the probe's target.
func gatewayOf(subnet string) net.IP {
	n := cidr(subnet)
	if n == nil {
		return nil
	}
	return ipam.Gateway(n)
}
