// Package lastlease keeps this node's last lease (VTEP and subnets) on disk
// under /var/lib, so that a node that was down longer than its lease TTL (a
// reboot clears the subnet file in /run) can ask for its old subnet(s)
// again: its containers come back with addresses from them.
package lastlease

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vxlan6/vxlan6/internal/atomicfile"
	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// DefaultPath is where vxlan6d keeps it unless --lease-file says otherwise.
const DefaultPath = "/var/lib/vxlan6/lease.json"

// Last is the persisted lease. NodeName and the networks tell whether the
// file still applies (a disk image copied to another host, a renumbered
// network).
type Last struct {
	NodeName string        `json:"NodeName"`
	VTEP     net.IP        `json:"VTEP"`
	Networks ipnet.Subnets `json:"-"` // V4 dual-stack only
	Subnets  ipnet.Subnets `json:"-"`
}

type file struct {
	NodeName    string `json:"NodeName"`
	VTEP        string `json:"VTEP"`
	IPv6Network string `json:"IPv6Network"`
	IPv6Subnet  string `json:"IPv6Subnet"`
	Network     string `json:"Network,omitempty"`
	Subnet      string `json:"Subnet,omitempty"`
}

// Save writes l to path atomically and durably (atomicfile.Write), mode
// 0600.
func Save(path string, l *Last) error {
	if l.VTEP == nil || l.Subnets.V6 == nil || l.Networks.V6 == nil {
		return fmt.Errorf("save last lease to %s: needs VTEP, IPv6Network and IPv6Subnet", path)
	}
	data, err := json.Marshal(file{NodeName: l.NodeName, VTEP: l.VTEP.String(), IPv6Network: ipnet.String(l.Networks.V6),
		IPv6Subnet: ipnet.String(l.Subnets.V6), Network: ipnet.String(l.Networks.V4), Subnet: ipnet.String(l.Subnets.V4)})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save last lease to %s: %w", path, err)
	}
	return nil
}

// ErrNone is returned by Load when there is no file.
var ErrNone = errors.New("no last lease saved")

// Load reads path. A missing file is ErrNone; anything unparsable is an
// error naming the file (the caller then simply has no hint).
func Load(path string) (*Last, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNone, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read last lease %s: %w", path, err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read last lease %s: %w", path, err)
	}
	l := &Last{NodeName: f.NodeName, VTEP: net.ParseIP(f.VTEP)}
	if l.VTEP == nil {
		return nil, fmt.Errorf("read last lease %s: VTEP %q is not an IP address", path, f.VTEP)
	}
	for _, p := range []struct {
		dst      **net.IPNet
		s, field string
		optional bool
	}{
		{&l.Networks.V6, f.IPv6Network, "IPv6Network", false}, {&l.Subnets.V6, f.IPv6Subnet, "IPv6Subnet", false},
		{&l.Networks.V4, f.Network, "Network", true}, {&l.Subnets.V4, f.Subnet, "Subnet", true},
	} {
		if p.s == "" && p.optional {
			continue
		}
		_, n, err := net.ParseCIDR(p.s)
		if err != nil {
			return nil, fmt.Errorf("read last lease %s: %s %q is not a CIDR", path, p.field, p.s)
		}
		*p.dst = n
	}
	return l, nil
}
