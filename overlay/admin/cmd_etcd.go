package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/etcdclient"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// etcdCommand is what every admin command that talks to etcd shares.
type etcdCommand struct {
	c *cli
	e etcdclient.Options
}

// newEtcdCommand registers the etcd flags on cmd.
func (c *cli) newEtcdCommand(cmd *cobra.Command) *etcdCommand {
	ec := &etcdCommand{c: c}
	addEtcdFlags(cmd.Flags(), &ec.e)
	return ec
}

// validate checks the etcd flags (a usage error).
func (ec *etcdCommand) validate(cmd *cobra.Command) error {
	if err := ec.e.Validate(); err != nil {
		return ec.c.usageErr(cmd, err)
	}
	return nil
}

// connect validates the flags and connects once.
func (ec *etcdCommand) connect(cmd *cobra.Command) (*clientv3.Client, *lease.Registry, error) {
	if err := ec.validate(cmd); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := ec.e.ConnectOnce(ctx)
	if err != nil {
		return nil, nil, ec.c.fail(cmd, err)
	}
	return cli, lease.New(cli, ec.e.Prefix), nil
}

// do connects once for cmd, runs f with a bounded context and closes the
// client: the frame of every admin command that talks to etcd.
func (ec *etcdCommand) do(cmd *cobra.Command, f func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error) error {
	cli, reg, err := ec.connect(cmd)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := opContext()
	defer cancel()
	return f(ctx, cli, reg)
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

func (c *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "read or write the network config (<prefix>/config)",
		Args:  c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.usageErr(cmd, fmt.Errorf("want 'config put FILE|-' or 'config get'"))
		},
	}
	put := &cobra.Command{
		Use:   "put FILE|-",
		Short: "validate and store the network config (flannel's net-conf.json shape is understood)",
		Args:  c.nArgs(1, 1),
	}
	pec := c.newEtcdCommand(put)
	put.RunE = func(cmd *cobra.Command, args []string) error { return c.configPut(cmd, pec, args[0]) }
	get := &cobra.Command{Use: "get", Short: "print the network config", Args: c.noArgs()}
	gec := c.newEtcdCommand(get)
	get.RunE = func(cmd *cobra.Command, _ []string) error { return c.configGet(cmd, gec) }
	cmd.AddCommand(put, get)
	return cmd
}

func (c *cli) configPut(cmd *cobra.Command, ec *etcdCommand, file string) error {
	if err := ec.validate(cmd); err != nil {
		return err
	}
	// Validate before connecting: a bad config must be reported without
	// etcd, and must never reach it.
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return c.fail(cmd, fmt.Errorf("read config %s: %w", file, err))
	}
	data, notes, err := normalizeConfig(data)
	if err != nil {
		return c.fail(cmd, fmt.Errorf("invalid network config in %s: %w", file, err))
	}
	for _, n := range notes {
		fmt.Fprintf(c.stderr, "note: %s\n", n)
	}
	return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
		key := reg.ConfigKey()
		if _, err := cli.Put(ctx, key, string(data)); err != nil {
			return c.fail(cmd, fmt.Errorf("put %s: %w", key, err))
		}
		fmt.Fprintf(c.stdout, "network config written to %s\n", key)
		return nil
	})
}

func (c *cli) configGet(cmd *cobra.Command, ec *etcdCommand) error {
	return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
		key := reg.ConfigKey()
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return c.fail(cmd, fmt.Errorf("get %s: %w", key, err))
		}
		if len(resp.Kvs) == 0 {
			return c.fail(cmd, fmt.Errorf("no network config at %s (write one with 'vxlan6d config put FILE')", key))
		}
		v := resp.Kvs[0].Value
		c.stdout.Write(v)
		if len(v) > 0 && v[len(v)-1] != '\n' {
			fmt.Fprintln(c.stdout)
		}
		return nil
	})
}

func (c *cli) annotateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "annotate NODE [KEY=VALUE|KEY-]...",
		Short: "print, set or remove node annotations (e.g. vxlan6.io/public-ipv6=2001:db8::2)",
		Long: `With only NODE, print the node's annotations (KEY=VALUE lines, sorted).
KEY=VALUE sets an annotation, KEY- removes it. The public-ipv6 annotation
(` + lease.AnnotationPublicIPv6 + `, alias ` + lease.AnnotationPublicIPv6Flannel + `)
names the node's VTEP unless a daemon flag does.`,
		Args: c.nArgs(1, -1),
	}
	ec := c.newEtcdCommand(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return c.annotate(cmd, ec, args[0], args[1:]) }
	return cmd
}

type annotation struct{ k, v string }

// parseAnnotations reads KEY=VALUE (set) and KEY- (remove, v == "").
func parseAnnotations(kvs []string) ([]annotation, error) {
	var changes []annotation
	for _, kv := range kvs {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			if v == "" {
				return nil, fmt.Errorf("%q: empty value (use %s- to remove)", kv, k)
			}
			changes = append(changes, annotation{k, v})
		} else if k, ok := strings.CutSuffix(kv, "-"); ok && k != "" && !strings.Contains(k, "=") {
			changes = append(changes, annotation{k, ""})
		} else {
			return nil, fmt.Errorf("%q: want KEY=VALUE or KEY-", kv)
		}
	}
	return changes, nil
}

func (c *cli) annotate(cmd *cobra.Command, ec *etcdCommand, node string, kvs []string) error {
	if err := lease.ValidateNodeName(node); err != nil {
		return c.usageErr(cmd, err)
	}
	changes, err := parseAnnotations(kvs)
	if err != nil {
		return c.usageErr(cmd, err)
	}
	// Catch an obviously broken public-ipv6 before every daemon trips on it.
	for _, ch := range changes {
		if (ch.k == lease.AnnotationPublicIPv6 || ch.k == lease.AnnotationPublicIPv6Flannel) && ch.v != "" {
			if ip := net.ParseIP(ch.v); ip == nil || ip.To4() != nil {
				return c.fail(cmd, fmt.Errorf("%s=%q is not an IPv6 address", ch.k, ch.v))
			}
		}
	}
	return ec.do(cmd, func(ctx context.Context, cli *clientv3.Client, reg *lease.Registry) error {
		if len(changes) == 0 {
			ann, err := reg.NodeAnnotations(ctx, node)
			if err != nil {
				return c.fail(cmd, fmt.Errorf("read annotations of node %s: %w", node, err))
			}
			for _, k := range sortedKeys(ann) {
				fmt.Fprintf(c.stdout, "%s=%s\n", k, ann[k])
			}
			return nil
		}
		all := make(map[string]string, len(changes))
		keys := make([]string, 0, len(changes))
		for _, ch := range changes {
			all[ch.k] = ch.v
			keys = append(keys, ch.k)
		}
		if err := reg.AnnotateAll(ctx, node, all); err != nil {
			return c.fail(cmd, fmt.Errorf("annotate node %s with %s: %w", node, strings.Join(keys, ","), err))
		}
		for _, ch := range changes {
			if ch.v == "" {
				fmt.Fprintf(c.stdout, "node %s: removed %s\n", node, ch.k)
			} else {
				fmt.Fprintf(c.stdout, "node %s: %s=%s\n", node, ch.k, ch.v)
			}
		}
		return nil
	})
}

// Short names for the many log and table fields that show them.
var (
	ipStr  = ipnet.IPString
	netStr = ipnet.String
)
