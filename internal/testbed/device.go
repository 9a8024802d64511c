package testbed

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// LinkInfo is what `ip -d link show` says about one link.
type LinkInfo struct {
	Kind  string // "vxlan", "veth", ...
	Alias string // IFLA_IFALIAS ("vxlan6d" on devices vxlan6d made)
	Local net.IP // a VXLAN device's local address
	VNI   int
	Port  int
	MTU   int
}

// Link describes link name on h, or returns nil when h has no such link.
func (h *Host) Link(name string) (*LinkInfo, error) {
	out, err := h.Exec("ip", "-j", "-d", "link", "show", "dev", name)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, nil
		}
		return nil, err
	}
	var links []struct {
		MTU      int    `json:"mtu"`
		Alias    string `json:"ifalias"`
		LinkInfo struct {
			InfoKind string `json:"info_kind"`
			InfoData struct {
				ID     int    `json:"id"`
				Port   int    `json:"port"`
				Local6 string `json:"local6"`
				Local  string `json:"local"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return nil, fmt.Errorf("parse ip -j -d link show %s on %s: %v: %s", name, h.Name, err, out)
	}
	l, d := links[0], links[0].LinkInfo.InfoData
	local := d.Local6
	if local == "" {
		local = d.Local
	}
	return &LinkInfo{Kind: l.LinkInfo.InfoKind, Alias: l.Alias, Local: net.ParseIP(local), VNI: d.ID, Port: d.Port, MTU: l.MTU}, nil
}

// RoutesVia lists the destinations of the IPv6 routes through link name
// (link-local ones left out).
func (h *Host) RoutesVia(name string) ([]string, error) {
	out, err := h.Exec("ip", "-j", "-6", "route", "show", "dev", name)
	if err != nil {
		return nil, err
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		return nil, fmt.Errorf("parse ip -j -6 route show dev %s: %w: %s", name, err, out)
	}
	var dsts []string
	for _, r := range rs {
		if r.Dst != "" && !strings.HasPrefix(r.Dst, "fe80:") {
			dsts = append(dsts, r.Dst)
		}
	}
	return dsts, nil
}
