package daemon

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/overlay/etcdclient"
	"github.com/vxlan6/vxlan6/overlay/vtep"
)

// DefaultResyncInterval is the default of --resync-interval: often enough
// that a hand-deleted entry or a recreated underlay heals within a minute,
// rare enough that a full List of a big cluster costs nothing noticeable.
const DefaultResyncInterval = time.Minute

// Options is the daemon's whole configuration (the flags of `vxlan6d run`).
type Options struct {
	Etcd          etcdclient.Options
	Iface         []string
	IfaceRegex    []string
	IfaceCanReach string
	PublicIPv6    string
	PublicIP      string
	NodeName      string
	SubnetFile    string
	// LeaseFile keeps the last lease across reboots ("" disables it).
	LeaseFile string
	LeaseTTL  time.Duration
	// ResyncInterval is how often the data path is checked against a
	// fresh etcd snapshot and repaired; 0 disables it.
	ResyncInterval time.Duration
	MetricsAddr    string
	HealthzAddr    string
	// ForwardRules keeps accept rules for the pod networks in the FORWARD
	// path of hosts whose firewall drops forwarded traffic (see package
	// firewall); --forward-rules defaults it to true, false removes them.
	ForwardRules bool
	// Version is the build's version, shown by vxlan6d_build_info.
	Version string
	// IPMasq masquerades pod traffic leaving the cluster network(s)
	// (package egress); --ip-masq defaults it to true, false removes the
	// rules.
	IPMasq bool
}

// vtepOptions maps the flags onto vtep.Options; the annotation is filled in
// by the caller once it has been read from etcd.
func (o *Options) vtepOptions(annotation string) vtep.Options {
	return vtep.Options{
		PublicIPv6:    o.PublicIPv6,
		PublicIP:      o.PublicIP,
		Iface:         o.Iface,
		IfaceRegex:    o.IfaceRegex,
		IfaceCanReach: o.IfaceCanReach,
		Annotation:    annotation,
	}
}

// FlagNamesAddress reports whether a flag names the VTEP address, in which
// case the node annotation is ignored (a flag wins) and the choice can be
// checked before etcd is even contacted.
func (o *Options) FlagNamesAddress() bool {
	if o.PublicIPv6 != "" {
		return true
	}
	ip := net.ParseIP(o.PublicIP)
	return o.PublicIP != "" && (ip == nil || ip.To4() == nil)
}

// Validate checks the options' values (syntax and ranges); VTEP choices are
// checked by vtep.Choose, with the network state at hand.
func (o *Options) Validate() error {
	if err := o.Etcd.Validate(); err != nil {
		return err
	}
	if o.NodeName == "" {
		return fmt.Errorf("--node-name is empty and the hostname is unknown")
	}
	if strings.Contains(o.NodeName, "/") {
		return fmt.Errorf("--node-name %q must not contain /", o.NodeName)
	}
	if o.SubnetFile == "" {
		return fmt.Errorf("--subnet-file must not be empty")
	}
	if o.LeaseTTL < time.Second {
		return fmt.Errorf("--lease-ttl %s is too short (etcd leases count whole seconds; at least 1s)", o.LeaseTTL)
	}
	if o.LeaseTTL%time.Second != 0 {
		return fmt.Errorf("--lease-ttl %s is not a whole number of seconds", o.LeaseTTL)
	}
	if o.ResyncInterval != 0 && o.ResyncInterval < time.Second {
		return fmt.Errorf("--resync-interval %s is too short (at least 1s; 0 disables)", o.ResyncInterval)
	}
	for _, re := range o.IfaceRegex {
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("--iface-regex %q: %v", re, err)
		}
	}
	for name, addr := range map[string]string{"--metrics-addr": o.MetricsAddr, "--healthz-addr": o.HealthzAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: %v", name, addr, err)
		}
	}
	return nil
}
