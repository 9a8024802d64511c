package daemon

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// EnvPrefix prefixes the environment variable of every flag:
// --etcd-endpoints is also VXLAN6D_ETCD_ENDPOINTS. A flag on the command line
// wins over its variable.
const EnvPrefix = "VXLAN6D_"

// DefaultResyncInterval is the default of --resync-interval: often enough
// that a hand-deleted entry or a recreated underlay heals within a minute,
// rare enough that a full List of a big cluster costs nothing noticeable.
const DefaultResyncInterval = time.Minute

// EtcdOptions say how to reach etcd; every subcommand that talks to etcd takes them.
type EtcdOptions struct {
	Endpoints []string
	Prefix    string
	CAFile    string
	CertFile  string
	KeyFile   string
	Username  string
	Password  string
}

// Options is the daemon's whole configuration (the flags of `vxlan6d run`).
type Options struct {
	Etcd          EtcdOptions
	Iface         []string
	IfaceRegex    []string
	IfaceCanReach string
	PublicIPv6    string
	PublicIP      string
	NodeName      string
	SubnetFile    string
	LeaseTTL      time.Duration
	// ResyncInterval is how often the data path is checked against a
	// fresh etcd snapshot and repaired; 0 disables it.
	ResyncInterval time.Duration
	MetricsAddr    string
	HealthzAddr    string
	LogLevel       string
	LogFormat      string
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

// flagNamesAddress reports whether a flag names the VTEP address, in which
// case the node annotation is ignored (a flag wins) and the choice can be
// checked before etcd is even contacted.
func (o *Options) flagNamesAddress() bool {
	if o.PublicIPv6 != "" {
		return true
	}
	ip := net.ParseIP(o.PublicIP)
	return o.PublicIP != "" && (ip == nil || ip.To4() == nil)
}

// listFlag is a repeatable flag; with split it also accepts comma lists.
type listFlag struct {
	v     *[]string
	split bool
}

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	parts := []string{s}
	if l.split {
		parts = strings.Split(s, ",")
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

func addEtcdFlags(fs *flag.FlagSet, e *EtcdOptions) {
	fs.Var(listFlag{&e.Endpoints, true}, "etcd-endpoints", "etcd endpoints, comma list (default http://127.0.0.1:2379); unix:///path works too")
	fs.StringVar(&e.Prefix, "etcd-prefix", lease.DefaultPrefix, "etcd key prefix")
	fs.StringVar(&e.CAFile, "etcd-cafile", "", "CA file to verify etcd's TLS certificate")
	fs.StringVar(&e.CertFile, "etcd-certfile", "", "client certificate for etcd TLS")
	fs.StringVar(&e.KeyFile, "etcd-keyfile", "", "client key for etcd TLS")
	fs.StringVar(&e.Username, "etcd-username", "", "etcd user name")
	fs.StringVar(&e.Password, "etcd-password", "", "etcd password")
}

func addLogFlags(fs *flag.FlagSet, level, format *string) {
	fs.StringVar(level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(format, "log-format", "text", "log format: text or json")
}

func addRunFlags(fs *flag.FlagSet, o *Options) {
	addEtcdFlags(fs, &o.Etcd)
	fs.Var(listFlag{&o.Iface, true}, "iface", "underlay interface name or one of its addresses; repeatable or comma list, tried in order")
	fs.Var(listFlag{&o.IfaceRegex, false}, "iface-regex", "regex matched against addresses, then interface names; repeatable")
	fs.StringVar(&o.IfaceCanReach, "iface-can-reach", "", "IPv6 destination: use the preferred source of the route to it")
	fs.StringVar(&o.PublicIPv6, "public-ipv6", "", "the VTEP address (IPv6); wins over the node annotation "+lease.AnnotationPublicIPv6)
	fs.StringVar(&o.PublicIP, "public-ip", "", "an IPv6 value acts as --public-ipv6; an IPv4 value is only advertised")
	host, _ := os.Hostname()
	fs.StringVar(&o.NodeName, "node-name", host, "node name (annotations live under <prefix>/nodes/<node-name>)")
	fs.StringVar(&o.SubnetFile, "subnet-file", subnetfile.DefaultPath, "subnet file read by the vxlan6 CNI plugin")
	fs.DurationVar(&o.LeaseTTL, "lease-ttl", lease.DefaultTTL, "TTL of the subnet lease in etcd, renewed while the daemon runs (Go duration, e.g. 24h, 5s)")
	fs.DurationVar(&o.ResyncInterval, "resync-interval", DefaultResyncInterval, "how often to re-check the vxlan device, its peer entries and the subnet file against etcd and repair them (Go duration; 0 disables; failed peer updates are retried after 5s regardless)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "listen address for Prometheus /metrics (empty: off)")
	fs.StringVar(&o.HealthzAddr, "healthz-addr", "", "listen address for /healthz (empty: off; may equal --metrics-addr)")
	addLogFlags(fs, &o.LogLevel, &o.LogFormat)
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command line
// from its environment variable. Errors name the flag (and the variable).
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return applyEnv(fs, getenv)
}

// applyEnv sets every flag not given on the command line from its variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		v, ok := getenv(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("invalid value %q in %s for flag --%s: %v", v, envName(f.Name), f.Name, serr)
		}
	})
	return err
}

// validate checks what can be checked without contacting etcd.
func (e *EtcdOptions) validate() error {
	if len(e.Endpoints) == 0 {
		e.Endpoints = []string{"http://127.0.0.1:2379"}
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme == "" {
			return fmt.Errorf("--etcd-endpoints: %q is not a URL (want e.g. http://127.0.0.1:2379 or unix:///run/etcd.sock)", ep)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" {
				return fmt.Errorf("--etcd-endpoints: %q has no host", ep)
			}
		case "unix", "unixs":
		default:
			return fmt.Errorf("--etcd-endpoints: %q: scheme %q is not http, https, unix or unixs", ep, u.Scheme)
		}
	}
	if e.Prefix == "" || !strings.HasPrefix(e.Prefix, "/") {
		return fmt.Errorf("--etcd-prefix: %q must start with /", e.Prefix)
	}
	e.Prefix = strings.TrimRight(e.Prefix, "/")
	if e.Prefix == "" {
		return fmt.Errorf("--etcd-prefix: %q leaves no prefix", "/")
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return fmt.Errorf("--etcd-certfile and --etcd-keyfile must be given together")
	}
	if e.Password != "" && e.Username == "" {
		return fmt.Errorf("--etcd-password needs --etcd-username")
	}
	return nil
}

// validate checks the flags' values (syntax and ranges); VTEP choices are
// checked by vtep.Choose, with the network state at hand.
func (o *Options) validate() error {
	if err := o.Etcd.validate(); err != nil {
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
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	return nil
}
