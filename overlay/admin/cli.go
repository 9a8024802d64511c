// Package admin is vxlan6d's command line: `run` (the daemon, in package
// daemon), the lab `etcd`, and the admin commands that read and write the
// cluster's state in etcd (config, annotate, leases).
package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/etcdclient"
	"github.com/vxlan6/vxlan6/overlay/etcdserver"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// Exit codes of the CLI.
const (
	ExitOK    = 0
	ExitError = 1 // runtime failure, invalid VTEP choice, invalid config
	ExitUsage = 2 // unknown flag, bad flag value, bad arguments
)

const usageText = `vxlan6d — the vxlan6 overlay daemon and its admin commands.

Usage:
  vxlan6d [run] [flags]                     run the daemon (default)
  vxlan6d etcd --data-dir D [--listen-client-urls U[,U]] [TLS, cluster flags]
                                            embedded etcd for labs and tests (default:
                                            loopback only; see vxlan6d etcd -h)
  vxlan6d config put FILE|- [etcd flags]    validate and store the network config (<prefix>/config)
  vxlan6d config get [etcd flags]           print the network config
  vxlan6d annotate NODE KEY=VALUE|KEY- ...  set or remove node annotations
                                            (e.g. vxlan6.io/public-ipv6=2001:db8::2)
  vxlan6d leases [etcd flags]               table of leases: VTEP, node, subnets, MAC, TTL
  vxlan6d version

The daemon's lease in etcd has a TTL (--lease-ttl, default 5m) and is renewed
while it runs; when a node dies, its peers drop its routes once the TTL has
passed. Stopping the daemon (SIGTERM) leaves the VXLAN device, its peers and
the lease in place, so a restart does not disturb traffic. Every
--resync-interval (default 1m) it re-checks the VXLAN device, its peer
entries and the subnet file against etcd and repairs what was lost; while
etcd is unreachable it leaves them alone.

Every flag can also be set by an environment variable VXLAN6D_<FLAG>, dashes
as underscores (--etcd-endpoints = VXLAN6D_ETCD_ENDPOINTS); a flag wins.
Run "vxlan6d <command> -h" for the flags of a command.
`

// Main is the whole CLI; the binary's main only calls it. It returns the
// process exit code.
func Main(args []string, version string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	c := &cli{stdout: stdout, stderr: stderr, getenv: os.LookupEnv, version: version}
	switch cmd {
	case "run":
		return c.run(args)
	case "etcd":
		return c.etcd(args)
	case "config":
		return c.config(args)
	case "annotate":
		return c.annotate(args)
	case "leases":
		return c.leases(args)
	case "version":
		fmt.Fprintf(stdout, "vxlan6d %s\n", version)
		return ExitOK
	case "help":
		fmt.Fprint(stdout, usageText)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "vxlan6d: unknown command %q\n\n%s", cmd, usageText)
		return ExitUsage
	}
}

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)
	version        string
}

// parse parses flags + env; it returns an exit code when the caller must stop.
func (c *cli) parse(fs *flag.FlagSet, args []string) (int, bool) {
	fs.SetOutput(io.Discard)
	return c.check(fs, parseFlags(fs, args, c.getenv))
}

func (c *cli) check(fs *flag.FlagSet, err error) (int, bool) {
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(c.stdout)
		fmt.Fprintf(c.stdout, "Usage of vxlan6d %s (each flag also from env %s<FLAG>):\n", fs.Name(), EnvPrefix)
		fs.PrintDefaults()
		return ExitOK, false
	}
	if err != nil {
		return c.usageErr(fs.Name(), err), false
	}
	return 0, true
}

var singleDash = regexp.MustCompile(`(flag provided but not defined: | for flag )-([a-z])`)

func (c *cli) usageErr(cmd string, err error) int {
	msg := err.Error()
	// The flag package says "-name"; the documented spelling is "--name".
	msg = singleDash.ReplaceAllString(msg, "${1}--$2")
	msg = strings.Replace(msg, "flag provided but not defined: ", "unknown flag: ", 1)
	fmt.Fprintf(c.stderr, "vxlan6d %s: %s\nRun 'vxlan6d %s -h' for usage.\n", cmd, msg, cmd)
	return ExitUsage
}

func (c *cli) fail(cmd string, err error) int {
	fmt.Fprintf(c.stderr, "vxlan6d %s: %v\n", cmd, err)
	return ExitError
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func (c *cli) run(args []string) int {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	addRunFlags(fs, &o)
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageErr("run", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if err := o.validate(); err != nil {
		return c.usageErr("run", err)
	}
	log := newLogger(c.stderr, o.LogLevel, o.LogFormat)
	// Packages log through the default logger (e.g. lease warnings).
	slog.SetDefault(log)
	log.Info("vxlan6d starting", "version", c.version, "node", o.NodeName, "prefix", o.Etcd.Prefix, "leaseTTL", o.LeaseTTL.String())
	ctx, stop := signalContext()
	defer stop()
	if err := daemon.Run(ctx, o.Options, log); err != nil {
		log.Error("vxlan6d stopped", "err", err)
		return c.fail("run", err)
	}
	return ExitOK
}

func (c *cli) etcd(args []string) int {
	var cfg etcdserver.Config
	var level, format string
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	addEtcdServerFlags(fs, &cfg)
	addLogFlags(fs, &level, &format)
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageErr("etcd", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	exposed, err := checkEtcdServer(&cfg)
	if err != nil {
		return c.usageErr("etcd", err)
	}
	if _, err := parseLevel(level); err != nil {
		return c.usageErr("etcd", err)
	}
	log := newLogger(c.stderr, level, format)
	slog.SetDefault(log)
	for _, u := range exposed {
		log.Warn("etcd serves clients in cleartext beyond this host: anyone who reaches it can rewrite the overlay's routes; prefer https:// with --client-cert-auth", "url", u)
	}
	srv, err := etcdserver.Start(cfg)
	if err != nil {
		return c.fail("etcd", err)
	}
	defer srv.Close()
	ctx, stop := signalContext()
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("embedded etcd stopping")
		return ExitOK
	case err := <-srv.Err():
		return c.fail("etcd", err)
	}
}

// parseEtcd parses the etcd flags of an admin command. Flags may also
// follow the positional arguments (vxlan6d annotate NODE K=V --etcd-...).
func (c *cli) parseEtcd(name string, args []string, minArgs, maxArgs int) (*etcdclient.Options, []string, int, bool) {
	e := &etcdclient.Options{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addEtcdFlags(fs, e)
	var pos []string
	rest := args
	for {
		if code, ok := c.check(fs, fs.Parse(rest)); !ok {
			return nil, nil, code, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if code, ok := c.check(fs, applyEnv(fs, c.getenv)); !ok {
		return nil, nil, code, false
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return nil, nil, c.usageErr(name, fmt.Errorf("wrong number of arguments (%d)", len(pos))), false
	}
	if err := e.Validate(); err != nil {
		return nil, nil, c.usageErr(name, err), false
	}
	return e, pos, 0, true
}

// dial connects once for an admin command.
func (c *cli) dial(name string, e *etcdclient.Options) (*clientv3.Client, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := e.ConnectOnce(ctx)
	if err != nil {
		return nil, c.fail(name, err)
	}
	return cli, 0
}

// etcdCommand parses the etcd flags of an admin command and connects once.
func (c *cli) etcdCommand(name string, args []string, minArgs, maxArgs int) (*clientv3.Client, *etcdclient.Options, []string, int) {
	e, pos, code, ok := c.parseEtcd(name, args, minArgs, maxArgs)
	if !ok {
		return nil, nil, nil, code
	}
	cli, code := c.dial(name, e)
	return cli, e, pos, code
}

func (c *cli) config(args []string) int {
	if len(args) == 0 || (args[0] != "put" && args[0] != "get") {
		return c.usageErr("config", errors.New("want 'config put FILE|-' or 'config get'"))
	}
	verb := args[0]
	name := "config " + verb
	nargs := 0
	if verb == "put" {
		nargs = 1
	}
	e, pos, code, ok := c.parseEtcd(name, args[1:], nargs, nargs)
	if !ok {
		return code
	}
	var data []byte
	if verb == "put" {
		// Validate before connecting: a bad config must be reported without
		// etcd, and must never reach it.
		file := pos[0]
		var err error
		if file == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return c.fail(name, fmt.Errorf("read config %s: %w", file, err))
		}
		if _, err := lease.ParseConfig(data); err != nil {
			return c.fail(name, fmt.Errorf("invalid network config in %s: %w", file, err))
		}
	}
	cli, code := c.dial(name, e)
	if cli == nil {
		return code
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := e.Prefix + "/config"
	if verb == "put" {
		if _, err := cli.Put(ctx, key, string(data)); err != nil {
			return c.fail(name, fmt.Errorf("put %s: %w", key, err))
		}
		fmt.Fprintf(c.stdout, "network config written to %s\n", key)
		return ExitOK
	}
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return c.fail(name, fmt.Errorf("get %s: %w", key, err))
	}
	if len(resp.Kvs) == 0 {
		return c.fail(name, fmt.Errorf("no network config at %s (write one with 'vxlan6d config put FILE')", key))
	}
	v := resp.Kvs[0].Value
	c.stdout.Write(v)
	if len(v) > 0 && v[len(v)-1] != '\n' {
		fmt.Fprintln(c.stdout)
	}
	return ExitOK
}

func (c *cli) annotate(args []string) int {
	cli, e, pos, code := c.etcdCommand("annotate", args, 2, -1)
	if cli == nil {
		return code
	}
	defer cli.Close()
	node := pos[0]
	if node == "" || strings.Contains(node, "/") {
		return c.usageErr("annotate", fmt.Errorf("node name %q must be non-empty without /", node))
	}
	type change struct{ k, v string }
	var changes []change
	for _, kv := range pos[1:] {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			if v == "" {
				return c.usageErr("annotate", fmt.Errorf("%q: empty value (use %s- to remove)", kv, k))
			}
			changes = append(changes, change{k, v})
		} else if k, ok := strings.CutSuffix(kv, "-"); ok && k != "" && !strings.Contains(k, "=") {
			changes = append(changes, change{k, ""})
		} else {
			return c.usageErr("annotate", fmt.Errorf("%q: want KEY=VALUE or KEY-", kv))
		}
	}
	// Catch an obviously broken public-ipv6 before every daemon trips on it.
	for _, ch := range changes {
		if (ch.k == lease.AnnotationPublicIPv6 || ch.k == lease.AnnotationPublicIPv6Flannel) && ch.v != "" {
			if ip := net.ParseIP(ch.v); ip == nil || ip.To4() != nil {
				return c.fail("annotate", fmt.Errorf("%s=%q is not an IPv6 address", ch.k, ch.v))
			}
		}
	}
	reg := lease.New(cli, e.Prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ch := range changes {
		if err := reg.Annotate(ctx, node, ch.k, ch.v); err != nil {
			return c.fail("annotate", fmt.Errorf("annotate node %s with %s: %w", node, ch.k, err))
		}
		if ch.v == "" {
			fmt.Fprintf(c.stdout, "node %s: removed %s\n", node, ch.k)
		} else {
			fmt.Fprintf(c.stdout, "node %s: %s=%s\n", node, ch.k, ch.v)
		}
	}
	return ExitOK
}

func (c *cli) leases(args []string) int {
	cli, e, _, code := c.etcdCommand("leases", args, 0, 0)
	if cli == nil {
		return code
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := lease.New(cli, e.Prefix)
	cfg, err := reg.GetConfig(ctx)
	if err != nil {
		return c.fail("leases", fmt.Errorf("read network config: %w", err))
	}
	snap, err := reg.List(ctx, cfg)
	if err != nil {
		return c.fail("leases", fmt.Errorf("list leases: %w", err))
	}
	ls := append([]lease.Lease(nil), snap.Leases...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].VTEP.String() < ls[j].VTEP.String() })
	ttls := ttlCache{cli: cli, m: map[clientv3.LeaseID]string{}}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VTEP\tNODE\tIPV6 SUBNET\tIPV4 SUBNET\tMAC\tTTL")
	for _, l := range ls {
		ttl := "reserved"
		if !l.Reserved {
			ttl = ttls.get(ctx, l.EtcdLease)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ipStr(l.VTEP), dash(l.NodeName), dash(netStr(l.IPv6Subnet)), dash(netStr(l.IPv4Subnet)), dash(l.VtepMAC.String()), ttl)
	}
	tw.Flush()
	if snap.Skipped > 0 {
		fmt.Fprintf(c.stderr, "%d invalid lease record(s) skipped (see the warnings above)\n", snap.Skipped)
	}
	return ExitOK
}

func ipStr(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func netStr(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ttlCache asks etcd for the remaining TTL of each etcd lease once (many
// records may share one).
type ttlCache struct {
	cli *clientv3.Client
	m   map[clientv3.LeaseID]string
}

func (c *ttlCache) get(ctx context.Context, id clientv3.LeaseID) string {
	if id == 0 {
		return "none"
	}
	if v, ok := c.m[id]; ok {
		return v
	}
	v := "expired"
	if t, err := c.cli.TimeToLive(ctx, id); err != nil {
		v = "?"
	} else if t.TTL >= 0 {
		v = (time.Duration(t.TTL) * time.Second).String()
	}
	c.m[id] = v
	return v
}
