package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/vxlan6/vxlan6/subnetfile"
)

const (
	defaultDataDir    = "/var/lib/cni/vxlan6"
	defaultBridge     = "vx6br0"
	defaultBootIDFile = "/proc/sys/kernel/random/boot_id"
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.NetConf
	SubnetFile string `json:"subnetFile"`
	DataDir    string `json:"dataDir"`
	Bridge     string `json:"bridge"`
	MTU        int    `json:"mtu"`
	IPMasq     bool   `json:"ipMasq"`
	// FastPath "off" keeps this network's pods off vxlan6d's eBPF fast
	// path (fastpath.go); anything else lets the daemon decide.
	FastPath string `json:"fastPath"`
	// BootIDFile holds the kernel's boot ID, which tells the IPAM store
	// that the node rebooted. Only tests set it (to simulate a reboot).
	BootIDFile string `json:"bootIDFile"`

	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
		Mac string   `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args struct {
		Cni struct {
			IPs []string `json:"ips,omitempty"`
			Mac string   `json:"mac,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`

	// The attachment list's name before CNI 1.1.0 settled on
	// cni.dev/valid-attachments; accepted for older runtimes.
	OldAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`
}

// loadConf parses and validates stdin. Errors are CNI errors with the
// spec's codes.
func loadConf(data []byte) (*NetConf, error) {
	n, err := decodeConf(data)
	if err != nil {
		return nil, err
	}
	if err := validIfName(n.Bridge); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("bridge %q: %v", n.Bridge, err), "")
	}
	if n.MTU != 0 && (n.MTU < 1280 || n.MTU > 65535) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("mtu %d out of range 1280..65535 (IPv6 needs at least 1280)", n.MTU), "")
	}
	return n, nil
}

// decodeConf parses the config and fills defaults without judging the keys
// DEL does not use (bridge, mtu): a config edited into an invalid state after
// ADD must not stop the runtime from cleaning up.
func decodeConf(data []byte) (*NetConf, error) {
	n := &NetConf{}
	if err := json.Unmarshal(data, n); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode vxlan6 network config: %v", err), "")
	}
	if n.SubnetFile == "" {
		n.SubnetFile = subnetfile.DefaultPath
	}
	if n.DataDir == "" {
		n.DataDir = defaultDataDir
	}
	if n.Bridge == "" {
		n.Bridge = defaultBridge
	}
	if n.BootIDFile == "" {
		n.BootIDFile = defaultBootIDFile
	}
	if err := cniversion.ParsePrevResult(&n.NetConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decode prevResult: %v", err), "")
	}
	if len(n.ValidAttachments) == 0 && len(n.OldAttachments) > 0 {
		n.ValidAttachments = n.OldAttachments
	}
	return n, nil
}

func validIfName(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("interface names are 1 to 15 characters")
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("not a valid interface name")
	}
	// The kernel takes a name with % as a template (eth%d becomes eth0),
	// so the link would be created under another name and then not found.
	if strings.Contains(name, "%") {
		return fmt.Errorf("interface names cannot contain %% (the kernel reads it as a template such as eth%%d)")
	}
	return nil
}

// staticRequest is what the runtime asked for: pinned addresses and a MAC.
type staticRequest struct {
	IPs []net.IP
	MAC net.HardwareAddr
}

// parseStatic applies the CNI conventions' precedence: runtimeConfig wins
// over args.cni, which wins over CNI_ARGS.
func parseStatic(n *NetConf, cniArgs string) (*staticRequest, error) {
	envIP, envMAC, err := parseCNIArgs(cniArgs)
	if err != nil {
		return nil, err
	}
	var ipSrc []string
	var ipName string
	switch {
	case len(n.RuntimeConfig.IPs) > 0:
		ipSrc, ipName = n.RuntimeConfig.IPs, "runtimeConfig.ips"
	case len(n.Args.Cni.IPs) > 0:
		ipSrc, ipName = n.Args.Cni.IPs, "args.cni.ips"
	case envIP != "":
		ipSrc, ipName = strings.Split(envIP, ","), "CNI_ARGS IP"
	}
	req := &staticRequest{}
	for _, s := range ipSrc {
		ip, err := parseRequestedIP(strings.TrimSpace(s))
		if err != nil {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s: %v", ipName, err), "")
		}
		req.IPs = append(req.IPs, ip)
	}
	macSrc, macName := envMAC, "CNI_ARGS MAC"
	if n.Args.Cni.Mac != "" {
		macSrc, macName = n.Args.Cni.Mac, "args.cni.mac"
	}
	if n.RuntimeConfig.Mac != "" {
		macSrc, macName = n.RuntimeConfig.Mac, "runtimeConfig.mac"
	}
	if macSrc != "" {
		mac, err := net.ParseMAC(macSrc)
		if err != nil || len(mac) != 6 {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s: %q is not an Ethernet MAC address", macName, macSrc), "")
		}
		if mac[0]&1 == 1 {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s: %q is a multicast address", macName, macSrc), "")
		}
		// The kernel refuses it too, but only inside the veth request, as a
		// bare EADDRNOTAVAIL (code 999) after IPAM has run.
		if bytes.Equal(mac, make(net.HardwareAddr, 6)) {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s: %q is the all-zero address", macName, macSrc), "")
		}
		req.MAC = mac
	}
	return req, nil
}

// parseRequestedIP reads one requested address, with or without a prefix
// length; an IPv4 address comes back in its 4-byte form.
func parseRequestedIP(s string) (net.IP, error) {
	ip := net.ParseIP(s)
	if ip == nil {
		var err error
		if ip, _, err = net.ParseCIDR(s); err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
	}
	v4 := ip.To4()
	if v4 == nil {
		return ip, nil
	}
	// net reads ::ffff:a.b.c.d (and ::ffff:a00:1) as the IPv4 address
	// a.b.c.d: written in IPv6 notation (a colon), it was meant as IPv6,
	// and silently handing out an IPv4 address instead is never right.
	if strings.Contains(s, ":") {
		return nil, fmt.Errorf("%q is an IPv4-mapped IPv6 address, which vxlan6 does not assign; request %s (IPv4) or an IPv6 address", s, v4)
	}
	return v4, nil
}

// parseCNIArgs reads IP= and MAC= from CNI_ARGS. Unknown keys (K8S_POD_NAME,
// IgnoreUnknown, ...) are always ignored: runtimes send them whether or not
// they also send IgnoreUnknown=1.
func parseCNIArgs(s string) (ip, mac string, err error) {
	if s == "" {
		return "", "", nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return "", "", types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", pair), "")
		}
		switch k {
		case "IP":
			ip = v
		case "MAC":
			mac = v
		}
	}
	return ip, mac, nil
}
