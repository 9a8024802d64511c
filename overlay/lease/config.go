package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// Defaults of the network config.
const (
	DefaultBackendType   = "vxlan"
	DefaultVNI           = 1
	DefaultPort          = 8472
	DefaultIPv6SubnetLen = 64
	MaxVNI               = 1<<24 - 1
	MinMTU               = 1280 // IPv6 minimum link MTU

	FastPathAuto = "auto"
	FastPathOff  = "off"
	// FastPathDecap is auto plus decapsulation on the underlay's ingress
	// (datapath/fastpath decap.go): VXLAN packets of known peers for local
	// pods skip the host's INPUT chain, conntrack and the VXLAN socket.
	// Opt-in, because an operator's rules on the VXLAN port no longer see
	// that traffic.
	FastPathDecap = "decap"
	// DefaultFastPath is what an unset Backend.FastPath means.
	DefaultFastPath = FastPathAuto
)

// ErrNoConfig is returned by GetConfig when <prefix>/config does not exist.
var ErrNoConfig = errors.New("no network config")

// ErrInvalidConfig matches (errors.Is) every error about a config that exists
// but cannot be used.
var ErrInvalidConfig = errors.New("invalid network config")

// ConfigError is an invalid config found at Key.
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid network config at %s: %v", e.Key, e.Err)
}
func (e *ConfigError) Unwrap() error        { return e.Err }
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// rawConfig is the JSON shape, flannel's field names. EnableIPv6 is a pointer
// because its default depends on whether IPv6Network is given.
type rawConfig struct {
	EnableIPv6    *bool      `json:"EnableIPv6,omitempty"`
	EnableIPv4    bool       `json:"EnableIPv4"`
	IPv6Network   string     `json:"IPv6Network,omitempty"`
	IPv6SubnetLen int        `json:"IPv6SubnetLen,omitempty"`
	Network       string     `json:"Network,omitempty"`
	SubnetLen     int        `json:"SubnetLen,omitempty"`
	Backend       rawBackend `json:"Backend"`
	// First and last subnet handed out (flannel's keys); "": no bound.
	IPv6SubnetMin string `json:"IPv6SubnetMin,omitempty"`
	IPv6SubnetMax string `json:"IPv6SubnetMax,omitempty"`
	SubnetMin     string `json:"SubnetMin,omitempty"`
	SubnetMax     string `json:"SubnetMax,omitempty"`
}

type rawBackend struct {
	Type string `json:"Type,omitempty"`
	VNI  int    `json:"VNI,omitempty"`
	Port int    `json:"Port,omitempty"`
	MTU  int    `json:"MTU,omitempty"`
	// FastPath: "auto", "decap" or "off" (DefaultFastPath when empty).
	FastPath string `json:"FastPath,omitempty"`
}

// ParseConfig parses and validates config JSON (bad CIDR, subnet length not
// longer than the network, fewer than 4 subnets, IPv6 disabled, ... are errors
// that name the field). Defaults: EnableIPv6 true when IPv6Network is set,
// IPv6SubnetLen 64, Backend.Type "vxlan", VNI 1, Port 8472. Network and
// SubnetLen are ignored unless EnableIPv4 is true; SubnetMin/SubnetMax
// without it are an error.
func ParseConfig(data []byte) (*Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse config JSON: %w", err)
	}
	cfg := &Config{EnableIPv4: raw.EnableIPv4}
	if err := parseIPv6(&raw, cfg); err != nil {
		return nil, err
	}
	if cfg.EnableIPv4 {
		if err := parseIPv4(&raw, cfg); err != nil {
			return nil, err
		}
	} else if raw.SubnetMin != "" || raw.SubnetMax != "" {
		return nil, errors.New("SubnetMin/SubnetMax are set but IPv4 is off (no Network, or EnableIPv4 false)")
	}
	b, err := parseBackend(raw.Backend)
	if err != nil {
		return nil, err
	}
	cfg.Backend = b
	return cfg, nil
}

// parseIPv6 fills cfg's IPv6 network, which is required.
func parseIPv6(raw *rawConfig, cfg *Config) error {
	if raw.IPv6Network == "" {
		return errors.New("IPv6Network is required (vxlan6 is IPv6-first)")
	}
	cfg.EnableIPv6 = raw.EnableIPv6 == nil || *raw.EnableIPv6
	if !cfg.EnableIPv6 {
		return errors.New("EnableIPv6 is false: vxlan6 always needs the IPv6 network")
	}
	cfg.SubnetLen.V6 = raw.IPv6SubnetLen
	if cfg.SubnetLen.V6 == 0 {
		cfg.SubnetLen.V6 = DefaultIPv6SubnetLen
	}
	var err error
	if cfg.Networks.V6, err = parseNetwork("IPv6Network", raw.IPv6Network, false); err != nil {
		return err
	}
	if err := checkScope("IPv6Network", cfg.Networks.V6); err != nil {
		return err
	}
	// An IPv6 pod subnet needs room for the gateway and at least a few pods.
	if err := checkSubnetLen("IPv6SubnetLen", cfg.SubnetLen.V6, "IPv6Network", cfg.Networks.V6, 126); err != nil {
		return err
	}
	cfg.SubnetMin.V6, cfg.SubnetMax.V6, err = subnetRange("IPv6SubnetMin", "IPv6SubnetMax", raw.IPv6SubnetMin, raw.IPv6SubnetMax, cfg.Networks.V6, cfg.SubnetLen.V6)
	return err
}

// parseIPv4 fills cfg's IPv4 network (EnableIPv4 is true).
func parseIPv4(raw *rawConfig, cfg *Config) error {
	if raw.Network == "" {
		return errors.New("EnableIPv4 is true but Network (the IPv4 pod network) is missing")
	}
	if raw.SubnetLen == 0 {
		return errors.New("EnableIPv4 is true but SubnetLen (the IPv4 subnet length) is missing")
	}
	cfg.SubnetLen.V4 = raw.SubnetLen
	var err error
	if cfg.Networks.V4, err = parseNetwork("Network", raw.Network, true); err != nil {
		return err
	}
	if err := checkScope("Network", cfg.Networks.V4); err != nil {
		return err
	}
	if err := checkSubnetLen("SubnetLen", cfg.SubnetLen.V4, "Network", cfg.Networks.V4, 30); err != nil {
		return err
	}
	cfg.SubnetMin.V4, cfg.SubnetMax.V4, err = subnetRange("SubnetMin", "SubnetMax", raw.SubnetMin, raw.SubnetMax, cfg.Networks.V4, cfg.SubnetLen.V4)
	return err
}

// subnetRange parses a Min/Max pair: subnet start addresses of network
// with length bits, min <= max. Absent ("") values are nil.
func subnetRange(minKey, maxKey, minS, maxS string, network *net.IPNet, bits int) (net.IP, net.IP, error) {
	parse := func(key, s string) (net.IP, error) {
		if s == "" {
			return nil, nil
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%s %q is not an IP address", key, s)
		}
		start := ip.Mask(net.CIDRMask(bits, len(network.IP)*8))
		if !network.Contains(ip) || !start.Equal(ip) {
			return nil, fmt.Errorf("%s %s is not the start of a /%d inside %s", key, s, bits, network)
		}
		return start, nil
	}
	lo, err := parse(minKey, minS)
	if err != nil {
		return nil, nil, err
	}
	hi, err := parse(maxKey, maxS)
	if err != nil {
		return nil, nil, err
	}
	if lo != nil && hi != nil && subnetIndex(network, bits, lo).Cmp(subnetIndex(network, bits, hi)) > 0 {
		return nil, nil, fmt.Errorf("%s %s is above %s %s", minKey, lo, maxKey, hi)
	}
	return lo, hi, nil
}

// parseBackend applies the Backend defaults and checks the ranges.
func parseBackend(b rawBackend) (Backend, error) {
	out := Backend(b)
	if out.Type == "" {
		out.Type = DefaultBackendType
	}
	if !strings.EqualFold(out.Type, DefaultBackendType) {
		return Backend{}, fmt.Errorf("Backend.Type %q is not supported (only %q)", b.Type, DefaultBackendType)
	}
	out.Type = DefaultBackendType
	if out.VNI == 0 {
		out.VNI = DefaultVNI
	}
	if out.VNI < 1 || out.VNI > MaxVNI {
		return Backend{}, fmt.Errorf("Backend.VNI %d is out of range 1..%d", out.VNI, MaxVNI)
	}
	if out.Port == 0 {
		out.Port = DefaultPort
	}
	if out.Port < 1 || out.Port > 65535 {
		return Backend{}, fmt.Errorf("Backend.Port %d is out of range 1..65535", out.Port)
	}
	if out.MTU != 0 && (out.MTU < MinMTU || out.MTU > 65535) {
		return Backend{}, fmt.Errorf("Backend.MTU %d is out of range %d..65535 (IPv6 needs at least %d)", out.MTU, MinMTU, MinMTU)
	}
	out.FastPath = strings.ToLower(out.FastPath)
	switch out.FastPath {
	case "":
		out.FastPath = DefaultFastPath
	case FastPathAuto, FastPathDecap, FastPathOff:
	default:
		return Backend{}, fmt.Errorf("Backend.FastPath %q is not one of %q, %q, %q", b.FastPath, FastPathAuto, FastPathDecap, FastPathOff)
	}
	return out, nil
}

func parseNetwork(field, s string, wantV4 bool) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a CIDR: %w", field, s, err)
	}
	isV4 := ip.To4() != nil
	switch {
	case isV4 && strings.Contains(s, ":"):
		return nil, fmt.Errorf("%s %s is IPv4-mapped (::ffff:0:0/96), not a usable network", field, s)
	case wantV4 && !isV4:
		return nil, fmt.Errorf("%s %s is not an IPv4 network", field, s)
	case !wantV4 && isV4:
		return nil, fmt.Errorf("%s %s is not an IPv6 network", field, s)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("%s %s has host bits set (did you mean %s?)", field, s, n)
	}
	if wantV4 {
		n.IP = n.IP.To4()
	}
	return n, nil
}

// minNetworkLen is the shortest pod network accepted: anything wider
// would swallow large parts of the address space the host itself routes.
const minNetworkLen = 8

// specialNets are address ranges a pod network must not overlap: the
// kernel treats them specially, and a peer's route into one of them would
// take host traffic (DNS on ::1, neighbour discovery, etcd) into the tunnel.
var specialNets = []struct {
	what string
	n    *net.IPNet
}{
	{"the unspecified address", mustNet("::/128")},
	{"loopback", mustNet("::1/128")},
	{"IPv4-mapped", mustNet("::ffff:0:0/96")},
	{"link-local", mustNet("fe80::/10")},
	{"multicast", mustNet("ff00::/8")},
	{"the unspecified address", mustNet("0.0.0.0/8")},
	{"loopback", mustNet("127.0.0.0/8")},
	{"link-local", mustNet("169.254.0.0/16")},
	{"multicast", mustNet("224.0.0.0/4")},
	{"broadcast", mustNet("255.255.255.255/32")},
}

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	if ip4 := n.IP.To4(); ip4 != nil && !strings.Contains(s, ":") {
		n.IP = ip4
	}
	return n
}

// checkScope refuses a pod network that could capture host traffic:
// shorter than /8, or overlapping loopback, link-local, multicast, the
// unspecified address or IPv4-mapped space.
func checkScope(field string, n *net.IPNet) error {
	ones, _ := n.Mask.Size()
	if ones < minNetworkLen {
		return fmt.Errorf("%s %s is shorter than /%d: it would capture host traffic", field, n, minNetworkLen)
	}
	for _, sp := range specialNets {
		if ipnet.Overlaps(n, sp.n) {
			return fmt.Errorf("%s %s overlaps %s %s", field, n, sp.what, sp.n)
		}
	}
	return nil
}

func checkSubnetLen(field string, l int, netField string, n *net.IPNet, maxLen int) error {
	ones, _ := n.Mask.Size()
	switch {
	case l <= ones:
		return fmt.Errorf("%s %d is not longer than %s %s", field, l, netField, n)
	case l > maxLen:
		return fmt.Errorf("%s %d is too long (at most %d, a subnet needs room for a gateway and pods)", field, l, maxLen)
	case l-ones < 2:
		return fmt.Errorf("%s %d gives %s %s only %d subnets (need at least 4)", field, l, netField, n, 1<<(l-ones))
	}
	return nil
}

// DualStack reports whether nodes also get an IPv4 subnet.
func (c *Config) DualStack() bool { return c.EnableIPv4 && c.Networks.V4 != nil }

// IPv6SubnetCount is the number of IPv6 subnets of the network.
func (c *Config) IPv6SubnetCount() *big.Int { return subnetCount(c.Networks.V6, c.SubnetLen.V6) }

// MarshalJSON writes the config in its etcd form (flannel field names), so
// tools and tests can write <prefix>/config from a Config.
func (c *Config) MarshalJSON() ([]byte, error) {
	var raw rawConfig
	t := c.EnableIPv6
	raw.EnableIPv6 = &t
	raw.EnableIPv4 = c.EnableIPv4
	if c.Networks.V6 != nil {
		raw.IPv6Network = c.Networks.V6.String()
	}
	raw.IPv6SubnetLen = c.SubnetLen.V6
	raw.IPv6SubnetMin, raw.IPv6SubnetMax = ipnet.IPString(c.SubnetMin.V6), ipnet.IPString(c.SubnetMax.V6)
	if c.EnableIPv4 && c.Networks.V4 != nil {
		raw.Network = c.Networks.V4.String()
		raw.SubnetLen = c.SubnetLen.V4
		raw.SubnetMin, raw.SubnetMax = ipnet.IPString(c.SubnetMin.V4), ipnet.IPString(c.SubnetMax.V4)
	}
	raw.Backend.Type = c.Backend.Type
	raw.Backend.VNI = c.Backend.VNI
	raw.Backend.Port = c.Backend.Port
	raw.Backend.MTU = c.Backend.MTU
	raw.Backend.FastPath = c.Backend.FastPath
	return json.Marshal(raw)
}

// UnmarshalJSON is ParseConfig.
func (c *Config) UnmarshalJSON(data []byte) error {
	p, err := ParseConfig(data)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// GetConfig reads and parses <prefix>/config; a missing key is ErrNoConfig,
// an invalid one a *ConfigError.
func (r *Registry) GetConfig(ctx context.Context) (*Config, error) {
	cfg, _, err := r.getConfig(ctx)
	return cfg, err
}

func (r *Registry) getConfig(ctx context.Context) (*Config, int64, error) {
	key := r.ConfigKey()
	resp, err := r.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read network config %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, fmt.Errorf("%w at %s", ErrNoConfig, key)
	}
	cfg, err := parseStoredConfig(key, resp.Kvs[0].Value, r.log)
	if err != nil {
		return nil, resp.Header.Revision, &ConfigError{Key: key, Err: err}
	}
	return cfg, resp.Header.Revision, nil
}

// WaitConfig blocks until a config exists or ctx ends. While the key is
// missing or etcd is unreachable it retries (logging at most every
// configLogEvery); an invalid config is returned at once as a *ConfigError,
// because only an operator can fix it.
func (r *Registry) WaitConfig(ctx context.Context) (*Config, error) {
	bo := backoff.New(200*time.Millisecond, 5*time.Second)
	var lastLog time.Time
	for {
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		cfg, rev, err := r.getConfig(opCtx)
		cancel()
		if err == nil {
			return cfg, nil
		}
		if errors.Is(err, ErrInvalidConfig) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for network config at %s: %w", r.ConfigKey(), ctx.Err())
		}
		if time.Since(lastLog) >= configLogEvery {
			lastLog = time.Now()
			if errors.Is(err, ErrNoConfig) {
				r.log.Warn("waiting for the network config; write it to etcd", "key", r.ConfigKey())
			} else {
				r.log.Warn("cannot read the network config, retrying", "key", r.ConfigKey(), "err", err)
			}
		}
		if errors.Is(err, ErrNoConfig) {
			// Wait for the key to appear instead of polling; the timeout
			// bounds the wait in case the watch silently stalls.
			bo.Reset()
			wctx, wcancel := context.WithTimeout(ctx, configLogEvery)
			wch := r.cli.Watch(clientv3.WithRequireLeader(wctx), r.ConfigKey(), clientv3.WithRev(rev+1))
			for wr := range wch {
				if wr.Err() != nil || len(wr.Events) > 0 {
					break
				}
			}
			wcancel()
			continue
		}
		if err := bo.Sleep(ctx); err != nil {
			return nil, fmt.Errorf("wait for network config at %s: %w", r.ConfigKey(), err)
		}
	}
}
