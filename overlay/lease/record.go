package lease

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// record is the JSON value of <prefix>/leases/<vtep>.
type record struct {
	VTEP       string `json:"VTEP"`
	IPv6Subnet string `json:"IPv6Subnet"`
	Subnet     string `json:"Subnet,omitempty"` // IPv4, dual-stack only
	VtepMAC    string `json:"VtepMAC,omitempty"`
	NodeName   string `json:"NodeName,omitempty"`
	PublicIPv4 string `json:"PublicIPv4,omitempty"`
}

// MarshalRecord returns the etcd value of l (the fields Reserved,
// ModRevision and EtcdLease live in etcd's metadata, not in the value).
// Tools and benchmarks use it to write leases the way vxlan6d does.
func MarshalRecord(l *Lease) ([]byte, error) {
	if l.VTEP == nil || l.Subnets.V6 == nil {
		return nil, errors.New("lease record needs VTEP and IPv6Subnet")
	}
	rec := record{VTEP: l.VTEP.String(), IPv6Subnet: l.Subnets.V6.String(), NodeName: l.NodeName}
	if l.Subnets.V4 != nil {
		rec.Subnet = l.Subnets.V4.String()
	}
	if len(l.VtepMAC) > 0 {
		rec.VtepMAC = l.VtepMAC.String()
	}
	if l.PublicIPv4 != nil {
		rec.PublicIPv4 = l.PublicIPv4.String()
	}
	return json.Marshal(rec)
}

// maxFieldLen bounds every string field of a record that is parsed at all:
// no address or prefix is longer, and a huge field is someone's mistake or
// attack, not a lease.
const maxFieldLen = 256

// clipLen is how much of an odd field a warning quotes.
const clipLen = 64

// clip cuts s short for a log line or error (a record may carry megabytes).
func clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	return s[:clipLen] + fmt.Sprintf("...(%d bytes)", len(s))
}

// siteLocal is fec0::/10, deprecated (RFC 3879) and never a valid underlay.
var siteLocal = &net.IPNet{IP: net.ParseIP("fec0::"), Mask: net.CIDRMask(10, 128)}

// validateVTEP checks that ip can be a VXLAN endpoint over an IPv6 underlay.
func validateVTEP(ip net.IP) error {
	switch {
	case ip == nil:
		return errors.New("no VTEP")
	case ip.To4() != nil:
		return fmt.Errorf("VTEP %s is IPv4 or IPv4-mapped, not IPv6", ip)
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast():
		return fmt.Errorf("VTEP %s is not a unicast address", ip)
	case ip.IsLinkLocalUnicast():
		return fmt.Errorf("VTEP %s is link-local", ip)
	}
	return nil
}

// validatePeerVTEP is validateVTEP plus what a peer's VTEP must not be
// either: site-local, or inside a pod network (a tunnel endpoint routed
// through the tunnel itself).
func validatePeerVTEP(cfg *Config, ip net.IP) error {
	if err := validateVTEP(ip); err != nil {
		return err
	}
	switch {
	case siteLocal.Contains(ip):
		return fmt.Errorf("VTEP %s is site-local (fec0::/10)", ip)
	case cfg.Networks.V6 != nil && cfg.Networks.V6.Contains(ip):
		return fmt.Errorf("VTEP %s is inside the pod network %s", ip, cfg.Networks.V6)
	}
	return nil
}

func validateMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("VtepMAC %q is not an Ethernet address", mac.String())
	case mac[0]&1 != 0:
		return fmt.Errorf("VtepMAC %s is a multicast address", mac)
	case mac.String() == "00:00:00:00:00:00":
		return fmt.Errorf("VtepMAC %s is all zero", mac)
	}
	return nil
}

// parseSubnet parses s as a subnet of network with length l; v4 selects the family.
func parseSubnet(field, s string, network *net.IPNet, l int, v4 bool) (*net.IPNet, error) {
	n, err := parseNetwork(field, s, v4)
	if err != nil {
		return nil, err
	}
	ones, _ := n.Mask.Size()
	if !network.Contains(n.IP) {
		return nil, fmt.Errorf("%s %s is outside the network %s", field, s, network)
	}
	if ones != l {
		return nil, fmt.Errorf("%s %s is not a /%d", field, s, l)
	}
	return n, nil
}

// parseLease parses and validates the record at key (a full etcd key) against
// cfg. warn receives problems that do not invalidate the record.
func parseLease(cfg *Config, leasesPrefix string, kv keyValue, warn func(string)) (Lease, error) {
	name := strings.TrimPrefix(kv.key, leasesPrefix)
	var rec record
	if err := json.Unmarshal(kv.value, &rec); err != nil {
		return Lease{}, fmt.Errorf("not a lease record: %w", err)
	}
	if f := longField(rec); f != "" {
		return Lease{}, fmt.Errorf("field %s is longer than %d bytes", f, maxFieldLen)
	}
	var l Lease
	if l.VTEP = net.ParseIP(rec.VTEP); l.VTEP == nil {
		return Lease{}, fmt.Errorf("VTEP %q is not an IP address", clip(rec.VTEP))
	}
	if err := validatePeerVTEP(cfg, l.VTEP); err != nil {
		return Lease{}, err
	}
	// Only the canonical spelling is accepted, so that one VTEP has one key.
	if name != l.VTEP.String() {
		return Lease{}, fmt.Errorf("key does not match its VTEP %s (want key %s%s)", l.VTEP, leasesPrefix, l.VTEP)
	}
	if rec.IPv6Subnet == "" {
		return Lease{}, errors.New("no IPv6Subnet")
	}
	var err error
	if l.Subnets.V6, err = parseSubnet("IPv6Subnet", rec.IPv6Subnet, cfg.Networks.V6, cfg.SubnetLen.V6, false); err != nil {
		return Lease{}, err
	}
	if rec.Subnet != "" {
		if cfg.DualStack() {
			if l.Subnets.V4, err = parseSubnet("Subnet", rec.Subnet, cfg.Networks.V4, cfg.SubnetLen.V4, true); err != nil {
				return Lease{}, err
			}
		} else {
			warn(fmt.Sprintf("ignoring IPv4 Subnet %q: the network is IPv6-only", rec.Subnet))
		}
	}
	if l.VtepMAC, err = net.ParseMAC(rec.VtepMAC); err != nil {
		return Lease{}, fmt.Errorf("VtepMAC %q is not a MAC address", clip(rec.VtepMAC))
	}
	if err := validateMAC(l.VtepMAC); err != nil {
		return Lease{}, err
	}
	l.NodeName = rec.NodeName
	if rec.PublicIPv4 != "" {
		if ip := net.ParseIP(rec.PublicIPv4); ip != nil && ip.To4() != nil {
			l.PublicIPv4 = ip.To4()
		} else {
			warn(fmt.Sprintf("ignoring PublicIPv4 %q: not an IPv4 address", rec.PublicIPv4))
		}
	}
	l.ModRevision = kv.modRev
	l.CreateRevision = kv.createRev
	l.EtcdLease = clientv3.LeaseID(kv.lease)
	l.Reserved = kv.lease == 0
	return l, nil
}

// longField names the first string field of rec longer than maxFieldLen.
func longField(rec record) string {
	for _, f := range []struct{ name, v string }{
		{"VTEP", rec.VTEP}, {"IPv6Subnet", rec.IPv6Subnet}, {"Subnet", rec.Subnet},
		{"VtepMAC", rec.VtepMAC}, {"NodeName", rec.NodeName}, {"PublicIPv4", rec.PublicIPv4},
	} {
		if len(f.v) > maxFieldLen {
			return f.name
		}
	}
	return ""
}

// keyValue is the part of an etcd KeyValue the package uses.
type keyValue struct {
	key       string
	value     []byte
	createRev int64
	modRev    int64
	lease     int64
}

// subnetIndex is the number, counted from the start of network, of the
// subnet of length subLen that holds ip; nil when ip is nil or outside
// network (or of the other family).
func subnetIndex(network *net.IPNet, subLen int, ip net.IP) *big.Int {
	if ip == nil || !network.Contains(ip) {
		return nil
	}
	_, bits := network.Mask.Size()
	v := new(big.Int).SetBytes(ipBytes(ip, bits))
	v.Sub(v, new(big.Int).SetBytes(ipBytes(network.IP, bits)))
	return v.Rsh(v, uint(bits-subLen))
}

// subnetCount is the number of subnets of length subLen in network.
func subnetCount(network *net.IPNet, subLen int) *big.Int {
	ones, _ := network.Mask.Size()
	return new(big.Int).Lsh(big.NewInt(1), uint(subLen-ones))
}

func ipBytes(ip net.IP, bits int) []byte {
	if bits == 32 {
		return ip.To4()
	}
	return ip.To16()
}

// nthSubnet returns subnet number i (of length subLen) of network.
func nthSubnet(network *net.IPNet, subLen int, i *big.Int) *net.IPNet {
	_, bits := network.Mask.Size()
	v := new(big.Int).SetBytes(ipBytes(network.IP, bits))
	v.Add(v, new(big.Int).Lsh(i, uint(bits-subLen)))
	b := v.FillBytes(make([]byte, bits/8))
	return &net.IPNet{IP: net.IP(b), Mask: net.CIDRMask(subLen, bits)}
}

// Without returns the leases of the snapshot except the one of vtep (the
// node's own lease, which it must not program as a peer).
func (s *Snapshot) Without(vtep net.IP) []Lease {
	out := make([]Lease, 0, len(s.Leases))
	for _, l := range s.Leases {
		if !l.VTEP.Equal(vtep) {
			out = append(out, l)
		}
	}
	return out
}
