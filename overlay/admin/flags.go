package admin

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/egress"
	"github.com/vxlan6/vxlan6/overlay/etcdclient"
	"github.com/vxlan6/vxlan6/overlay/firewall"
	"github.com/vxlan6/vxlan6/overlay/lastlease"
	"github.com/vxlan6/vxlan6/overlay/lease"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// EnvPrefix prefixes the environment variable of every flag:
// --etcd-endpoints is also VXLAN6D_ETCD_ENDPOINTS. A flag on the command line
// wins over its variable.
const EnvPrefix = "VXLAN6D_"

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

// Type is the value's name in the help ("--iface list").
func (l listFlag) Type() string { return "list" }

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

func addEtcdFlags(fs *pflag.FlagSet, e *etcdclient.Options) {
	fs.Var(listFlag{&e.Endpoints, true}, "etcd-endpoints", "etcd endpoints, comma list (default http://127.0.0.1:2379); unix:///path works too")
	fs.StringVar(&e.Prefix, "etcd-prefix", lease.DefaultPrefix, "etcd key prefix")
	fs.StringVar(&e.CAFile, "etcd-cafile", "", "CA file to verify etcd's TLS certificate")
	fs.StringVar(&e.CertFile, "etcd-certfile", "", "client certificate for etcd TLS")
	fs.StringVar(&e.KeyFile, "etcd-keyfile", "", "client key for etcd TLS")
	fs.StringVar(&e.Username, "etcd-username", "", "etcd user name")
	fs.StringVar(&e.Password, "etcd-password", "", "etcd password (visible in ps: prefer --etcd-password-file, VXLAN6D_ETCD_PASSWORD or the systemd credential "+etcdclient.CredentialName+")")
	fs.StringVar(&e.PasswordFile, "etcd-password-file", "", "file holding the etcd password (mode 0600 or stricter)")
}

func addLogFlags(fs *pflag.FlagSet, level, format *string) {
	fs.StringVar(level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(format, "log-format", "text", "log format: text or json")
}

func addRunFlags(fs *pflag.FlagSet, o *runOptions) {
	addEtcdFlags(fs, &o.Etcd)
	fs.Var(listFlag{&o.Iface, true}, "iface", "underlay interface name or one of its addresses; repeatable or comma list, tried in order")
	fs.Var(listFlag{&o.IfaceRegex, false}, "iface-regex", "regex matched against addresses, then interface names; repeatable")
	fs.StringVar(&o.IfaceCanReach, "iface-can-reach", "", "IPv6 destination: use the preferred source of the route to it")
	fs.StringVar(&o.PublicIPv6, "public-ipv6", "", "the VTEP address (IPv6); wins over the node annotation "+lease.AnnotationPublicIPv6)
	fs.StringVar(&o.PublicIP, "public-ip", "", "an IPv6 value acts as --public-ipv6; an IPv4 value is only advertised")
	fs.StringVar(&o.NodeName, "node-name", "", "node name (annotations live under <prefix>/nodes/<node-name>; default: the hostname)")
	fs.StringVar(&o.SubnetFile, "subnet-file", subnetfile.DefaultPath, "subnet file read by the vxlan6 CNI plugin")
	fs.StringVar(&o.LeaseFile, "lease-file", lastlease.DefaultPath, "file keeping this node's last lease across reboots, so it asks for its old subnet first (empty: off)")
	fs.DurationVar(&o.LeaseTTL, "lease-ttl", lease.DefaultTTL, "TTL of the subnet lease in etcd, renewed while the daemon runs (Go duration, e.g. 24h, 5s)")
	fs.DurationVar(&o.ResyncInterval, "resync-interval", daemon.DefaultResyncInterval, "how often to re-check the vxlan device, its peer entries and the subnet file against etcd and repair them (Go duration; 0 disables; failed peer updates are retried after 5s regardless)")
	fs.BoolVar(&o.ForwardRules, "forward-rules", true, "keep iptables/ip6tables rules (chain "+firewall.Chain+", jumped to from FORWARD of the backend that drops) accepting forwarded pod traffic; false removes them")
	fs.BoolVar(&o.IPMasq, "ip-masq", true, "masquerade pod traffic leaving the cluster network(s), both families (nat chain "+egress.Chain+"); false removes the rules (a routed pod prefix needs none: docs/egress.md)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "listen address for Prometheus /metrics (empty: off)")
	fs.StringVar(&o.HealthzAddr, "healthz-addr", "", "listen address for /livez, /readyz and /healthz (= /readyz) (empty: off; may equal --metrics-addr)")
	addLogFlags(fs, &o.LogLevel, &o.LogFormat)
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// noEnv are the flags that no variable sets: they steer the CLI itself.
var noEnv = map[string]bool{"help": true, "version": true, "env-file": true}

// applyEnv sets every flag not given on the command line from its variable:
// first the process environment, then the env file (file may be nil), so
// the precedence is flag > environment > env file.
func applyEnv(fs *pflag.FlagSet, getenv func(string) (string, bool), file map[string]string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || noEnv[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := getenv(name)
		src := name
		if !ok || v == "" {
			v, ok = file[name]
			src = name + " (env file)"
		}
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("invalid value %q in %s for flag --%s: %v", v, src, f.Name, serr)
		}
	})
	return err
}

// runOptions are the flags of `vxlan6d run`: the daemon's options plus how
// it logs, which only the CLI cares about.
type runOptions struct {
	daemon.Options
	LogLevel  string
	LogFormat string
}

// validate checks the log flags, then the daemon's options.
func (o *runOptions) validate() error {
	if o.NodeName == "" {
		// Not the flag's default: help and man pages must not show the
		// host that built them.
		o.NodeName, _ = os.Hostname()
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	return o.Options.Validate()
}
