// Package subnetfile holds the contract between vxlan6d and the vxlan6 CNI
// plugin: the daemon writes this node's subnet(s), the cluster network(s), the
// overlay MTU and the VTEP; the plugin reads them on every ADD.
//
// The format is shell-sourceable KEY=VALUE lines (like flannel's subnet.env),
// so operators can `. /run/vxlan6/subnet.env` in scripts:
//
//	VXLAN6_NETWORK_V6=fd10:244::/48
//	VXLAN6_SUBNET_V6=fd10:244:0:1::/64
//	VXLAN6_NETWORK_V4=10.244.0.0/16   (dual-stack only)
//	VXLAN6_SUBNET_V4=10.244.1.0/24    (dual-stack only)
//	VXLAN6_MTU=1430
//	VXLAN6_VTEP=2001:db8:1::2
//	VXLAN6_SUBNET_HELD_BY=node-b@2001:db8:1::3   (only while another node holds the subnet)
//
// VXLAN6_SUBNET_HELD_BY marks the subnet as held by another node (its lease
// in etcd won): the plugin must not allocate from it and answers ADD with
// "try again later" until the daemon has sorted it out and removed the mark.
// Blank lines and lines starting with '#' are ignored. Unknown keys are
// ignored so that newer daemons can add keys without breaking older plugins.
// The IPv6 network and subnet are mandatory: vxlan6 is IPv6-first.
package subnetfile

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/vxlan6/vxlan6/internal/atomicfile"
	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// DefaultPath is where vxlan6d writes the file unless --subnet-file says otherwise.
const DefaultPath = "/run/vxlan6/subnet.env"

// Keys of the file, exported so tools and docs use the same spelling.
const (
	KeyNetworkV6 = "VXLAN6_NETWORK_V6"
	KeySubnetV6  = "VXLAN6_SUBNET_V6"
	KeyNetworkV4 = "VXLAN6_NETWORK_V4"
	KeySubnetV4  = "VXLAN6_SUBNET_V4"
	KeyMTU       = "VXLAN6_MTU"
	KeyVTEP      = "VXLAN6_VTEP"
	KeyHeldBy    = "VXLAN6_SUBNET_HELD_BY"
)

// maxHeldBy bounds the VXLAN6_SUBNET_HELD_BY value (a node name, '@', a VTEP).
const maxHeldBy = 300

// Config is the parsed content of a subnet file.
type Config struct {
	Networks ipnet.Subnets // cluster-wide pod networks; V4 nil unless dual-stack
	Subnets  ipnet.Subnets // this node's pod subnets; V4 nil unless dual-stack
	MTU      int           // MTU of the overlay (the VXLAN device's MTU)
	VTEP     net.IP        // the underlay address this node tunnels from
	// HeldBy, when set, names who else holds this node's subnet (see
	// KeyHeldBy); SafeHeldBy makes any string fit.
	HeldBy string
}

// Held reports whether another node holds the subnet: no allocation from it.
func (c *Config) Held() bool { return c.HeldBy != "" }

// SafeHeldBy turns a holder description (node names come from etcd) into a
// value the file can carry: letters, digits and ._:@- only (anything else
// becomes '_'), at most maxHeldBy bytes. Shell-sourcing stays safe.
func SafeHeldBy(s string) string {
	b := []byte(s)
	if len(b) > maxHeldBy {
		b = b[:maxHeldBy]
	}
	for i, c := range b {
		if !heldByChar(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func heldByChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:@-", c) >= 0
}

// DualStack reports whether the node also has an IPv4 pod subnet.
func (c *Config) DualStack() bool { return c.Subnets.V4 != nil }

// Validate checks the invariants the plugin relies on.
func (c *Config) Validate() error {
	if c.Networks.V6 == nil || c.Subnets.V6 == nil {
		return fmt.Errorf("%s and %s are required", KeyNetworkV6, KeySubnetV6)
	}
	if c.Networks.V6.IP.To4() != nil || c.Subnets.V6.IP.To4() != nil {
		return fmt.Errorf("%s/%s must be IPv6", KeyNetworkV6, KeySubnetV6)
	}
	if !ipnet.Contains(c.Networks.V6, c.Subnets.V6) {
		return fmt.Errorf("%s %s is not inside %s %s", KeySubnetV6, c.Subnets.V6, KeyNetworkV6, c.Networks.V6)
	}
	if (c.Networks.V4 == nil) != (c.Subnets.V4 == nil) {
		return fmt.Errorf("%s and %s must be given together", KeyNetworkV4, KeySubnetV4)
	}
	if c.Networks.V4 != nil {
		if c.Networks.V4.IP.To4() == nil || c.Subnets.V4.IP.To4() == nil {
			return fmt.Errorf("%s/%s must be IPv4", KeyNetworkV4, KeySubnetV4)
		}
		if !ipnet.Contains(c.Networks.V4, c.Subnets.V4) {
			return fmt.Errorf("%s %s is not inside %s %s", KeySubnetV4, c.Subnets.V4, KeyNetworkV4, c.Networks.V4)
		}
	}
	if c.MTU < 1280 || c.MTU > 65535 {
		return fmt.Errorf("%s %d out of range (IPv6 needs at least 1280)", KeyMTU, c.MTU)
	}
	if c.HeldBy != "" && SafeHeldBy(c.HeldBy) != c.HeldBy {
		return fmt.Errorf("%s %q: at most %d of letters, digits and ._:@-", KeyHeldBy, c.HeldBy, maxHeldBy)
	}
	return nil
}

// Read parses and validates the subnet file at path. Errors name the file.
func Read(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read subnet file %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("subnet file %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates subnet file content.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not KEY=VALUE", line, s)
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"'`)
		var err error
		switch k {
		case KeyNetworkV6:
			c.Networks.V6, err = parseCIDR(k, v)
		case KeySubnetV6:
			c.Subnets.V6, err = parseCIDR(k, v)
		case KeyNetworkV4:
			c.Networks.V4, err = parseCIDR(k, v)
		case KeySubnetV4:
			c.Subnets.V4, err = parseCIDR(k, v)
		case KeyMTU:
			c.MTU, err = strconv.Atoi(v)
			if err != nil {
				err = fmt.Errorf("%s %q is not a number", k, v)
			}
		case KeyHeldBy:
			c.HeldBy = v
		case KeyVTEP:
			c.VTEP = net.ParseIP(v)
			if c.VTEP == nil {
				err = fmt.Errorf("%s %q is not an IP address", k, v)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func parseCIDR(key, v string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(v)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a CIDR", key, v)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("%s %q has host bits set", key, v)
	}
	// ::ffff:10.0.0.0/104 parses as an IPv4 address with a 16-byte mask:
	// neither family, and printed back as another string.
	if ip.To4() != nil && strings.Contains(v, ":") {
		return nil, fmt.Errorf("%s %q is IPv4-mapped", key, v)
	}
	return n, nil
}

// Marshal renders c in the file format.
func (c *Config) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# written by vxlan6d; read by the vxlan6 CNI plugin\n")
	fmt.Fprintf(&b, "%s=%s\n%s=%s\n", KeyNetworkV6, c.Networks.V6, KeySubnetV6, c.Subnets.V6)
	if c.Networks.V4 != nil {
		fmt.Fprintf(&b, "%s=%s\n%s=%s\n", KeyNetworkV4, c.Networks.V4, KeySubnetV4, c.Subnets.V4)
	}
	fmt.Fprintf(&b, "%s=%d\n", KeyMTU, c.MTU)
	if c.VTEP != nil {
		fmt.Fprintf(&b, "%s=%s\n", KeyVTEP, c.VTEP)
	}
	if c.HeldBy != "" {
		fmt.Fprintf(&b, "%s=%s\n", KeyHeldBy, c.HeldBy)
	}
	return b.Bytes()
}

// Write validates c and replaces the file at path atomically (temp file in the
// same directory, fsync, rename, fsync of the directory), so the plugin never
// reads a half-written file.
func Write(path string, c *Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write subnet file %s: %w", path, err)
	}
	if err := atomicfile.Write(path, c.Marshal(), 0o644); err != nil {
		return fmt.Errorf("write subnet file %s: %w", path, err)
	}
	return nil
}
