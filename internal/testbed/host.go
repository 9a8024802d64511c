package testbed

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed/topology"
	"github.com/vxlan6/vxlan6/internal/testutil"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// BridgeCmd is iproute2's bridge tool by absolute path: the CNI reference
// plugin of the same name sits in ~/go/bin, often earlier in PATH. Tests that
// run `bridge` themselves use it too, so there is one place that knows.
const BridgeCmd = "/usr/sbin/bridge"

// Host is one simulated machine.
type Host struct {
	Bed  *Bed
	ID   int    // 1-based
	Name string // node name; also its netns name
	// Addr1 = 2001:db8:1::<id>1 and Addr2 = 2001:db8:1::<id>2 on the uplink.
	Addr1, Addr2 net.IP
	Dir          string // per-host state dir
	SubnetFile   string // the daemon writes it, the plugin reads it
	DataDir      string // plugin IPAM state
	Bridge       string // node bridge name used by AddContainer
	// DaemonEnv is added to the environment of daemons started from now
	// on (e.g. NOTIFY_SOCKET for a systemd notify test).
	DaemonEnv   []string
	daemons     []*Daemon
	nContainers int
}

// AddHost creates one more host on the switch.
func (b *Bed) AddHost() *Host {
	b.T.Helper()
	h := b.newHost()
	h.Addr1, h.Addr2 = topology.Addr1(h.ID), topology.Addr2(h.ID)
	b.apply(topology.Host(b.Switch, h.Name, h.ID, b.opts.ReverseAddrOrder))
	b.Hosts = append(b.Hosts, h)
	return h
}

// newHost is what every kind of host shares (AddHost, addRAHost): the next
// id, its state dir, its netns and the Cleanups that must run before the
// netns goes (fast-path pins, a state dump on failure). The caller wires
// the uplink and appends the host to b.Hosts.
func (b *Bed) newHost() *Host {
	b.T.Helper()
	id := len(b.Hosts) + 1
	h := &Host{Bed: b, ID: id, Name: fmt.Sprintf("%sh%d", b.Name, id), Bridge: testutil.UniqueName("vxb")}
	h.Dir = filepath.Join(b.Dir, h.Name)
	h.SubnetFile = filepath.Join(h.Dir, "subnet.env")
	h.DataDir = filepath.Join(h.Dir, "ipam")
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		b.T.Fatal(err)
	}
	b.AddNetns(h.Name)
	b.T.Cleanup(h.RemoveFastPathPins)
	// On failure, show the host as it was (runs before its netns goes).
	b.T.Cleanup(func() {
		if b.T.Failed() {
			b.dumpState(h.Name)
		}
	})
	return h
}

// NetnsPath is the host's netns path.
func (h *Host) NetnsPath() string { return NetnsPath(h.Name) }

// FirstListed is the uplink address the kernel lists first (the newest).
func (h *Host) FirstListed() net.IP {
	if h.Bed.opts.ReverseAddrOrder {
		return h.Addr1
	}
	return h.Addr2
}

// NotFirst is the uplink address the kernel does NOT list first: the one a
// VTEP test must name to prove the choice is honoured.
func (h *Host) NotFirst() net.IP {
	if h.Bed.opts.ReverseAddrOrder {
		return h.Addr2
	}
	return h.Addr1
}

// ListedAddrs returns the uplink's global IPv6 addresses in the kernel's order.
func (h *Host) ListedAddrs() ([]net.IP, error) {
	out, err := h.Exec("ip", "-j", "-6", "addr", "show", "dev", Uplink, "scope", "global")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("parse ip -j addr: %w", err)
	}
	var ips []net.IP
	for _, l := range links {
		for _, a := range l.AddrInfo {
			// ip -j prints filtered-out addresses as empty objects.
			if ip := net.ParseIP(a.Local); ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	return ips, nil
}

// Exec runs a command in the host's netns.
func (h *Host) Exec(args ...string) (string, error) { return h.Bed.Exec(h.Name, args...) }

// MustExec runs a command in the host's netns and fails the test on error.
func (h *Host) MustExec(args ...string) string {
	h.Bed.T.Helper()
	return h.Bed.MustExec(h.Name, args...)
}

// SubnetConfig reads the host's subnet file.
func (h *Host) SubnetConfig() (*subnetfile.Config, error) { return subnetfile.Read(h.SubnetFile) }

// WaitSubnetFile waits (bounded) until the host's subnet file is valid.
func (h *Host) WaitSubnetFile(timeout time.Duration) *subnetfile.Config {
	h.Bed.T.Helper()
	var c *subnetfile.Config
	err := Eventually(timeout, 50*time.Millisecond, func() (err error) {
		if d := h.Daemon(); d != nil && d.Exited() {
			return fmt.Errorf("daemon on %s exited: %v", h.Name, d.ExitErr())
		}
		c, err = h.SubnetConfig()
		return err
	})
	if err != nil {
		h.Bed.T.Fatalf("subnet file of %s: %v", h.Name, err)
	}
	return c
}

// VXLANLocal is the `local` of the host's VXLAN device as `ip -d link show`
// reports it.
func (h *Host) VXLANLocal() (net.IP, error) {
	out, err := h.Exec("ip", "-j", "-d", "link", "show", "dev", Device)
	if err != nil {
		return nil, err
	}
	var links []struct {
		MTU      int `json:"mtu"`
		LinkInfo struct {
			InfoKind string `json:"info_kind"`
			InfoData struct {
				Local6 string `json:"local6"`
				Local  string `json:"local"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return nil, fmt.Errorf("parse ip -j -d link show %s: %v: %s", Device, err, out)
	}
	d := links[0].LinkInfo.InfoData
	s := d.Local6
	if s == "" {
		s = d.Local
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("%s on %s has no local address: %s", Device, h.Name, out)
	}
	return ip, nil
}

// FDBEntry is one forwarding entry of the VXLAN device.
type FDBEntry struct {
	MAC string `json:"mac"`
	Dst string `json:"dst"`
}

// FDB lists the VXLAN device's fdb entries that have a remote destination.
func (h *Host) FDB() ([]FDBEntry, error) {
	out, err := h.Exec(BridgeCmd, "-j", "fdb", "show", "dev", Device)
	if err != nil {
		return nil, err
	}
	var all, remote []FDBEntry
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		return nil, fmt.Errorf("parse bridge -j fdb: %w: %s", err, out)
	}
	for _, e := range all {
		if e.Dst != "" {
			remote = append(remote, e)
		}
	}
	return remote, nil
}

// HasFDBDst reports whether some fdb entry tunnels to vtep.
func (h *Host) HasFDBDst(vtep net.IP) (bool, error) {
	es, err := h.FDB()
	if err != nil {
		return false, err
	}
	for _, e := range es {
		if ip := net.ParseIP(e.Dst); ip != nil && ip.Equal(vtep) {
			return true, nil
		}
	}
	return false, nil
}

// Routes lists the destinations routed via the VXLAN device (both families).
func (h *Host) Routes() ([]string, error) {
	var dsts []string
	for _, fam := range []string{"-6", "-4"} {
		out, err := h.Exec("ip", "-j", fam, "route", "show", "dev", Device)
		if err != nil {
			return nil, err
		}
		var rs []struct {
			Dst string `json:"dst"`
		}
		if strings.TrimSpace(out) == "" {
			continue
		}
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			return nil, fmt.Errorf("parse ip -j route: %w: %s", err, out)
		}
		for _, r := range rs {
			if r.Dst != "" && !strings.HasPrefix(r.Dst, "fe80:") {
				dsts = append(dsts, r.Dst)
			}
		}
	}
	return dsts, nil
}

// HasRoute reports whether subnet is routed via the VXLAN device.
func (h *Host) HasRoute(subnet *net.IPNet) (bool, error) {
	rs, err := h.Routes()
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r == subnet.String() {
			return true, nil
		}
	}
	return false, nil
}

// DataPath is a stable text of the VXLAN device's fdb, permanent neighbours and routes,
// to prove a restart left them untouched.
func (h *Host) DataPath() (string, error) {
	var sb strings.Builder
	for _, c := range [][]string{
		{BridgeCmd, "fdb", "show", "dev", Device},
		{"ip", "-6", "neigh", "show", "dev", Device, "nud", "permanent"},
		{"ip", "-4", "neigh", "show", "dev", Device, "nud", "permanent"},
		{"ip", "-6", "route", "show", "dev", Device},
		{"ip", "-4", "route", "show", "dev", Device},
	} {
		out, err := h.Exec(c...)
		if err != nil {
			return "", err
		}
		sb.WriteString(out)
	}
	return sb.String(), nil
}
