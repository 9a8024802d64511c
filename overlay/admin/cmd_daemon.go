package admin

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/vxlan6/vxlan6/overlay/daemon"
	"github.com/vxlan6/vxlan6/overlay/etcdserver/etcdconf"
)

func (c *cli) runCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the daemon (the default)",
		Long: `Run the overlay daemon.

The daemon's lease in etcd has a TTL (--lease-ttl, default 5m) and is renewed
while it runs; when a node dies, its peers drop its routes once the TTL has
passed. Every --resync-interval (default 1m) it re-checks the VXLAN device,
its peer entries and the subnet file against etcd and repairs what was lost;
while etcd is unreachable it leaves them alone.`,
		Args: c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return c.runCommand(cmd, &o) },
	}
	addRunFlags(cmd.Flags(), &o)
	return cmd
}

func (c *cli) runCommand(cmd *cobra.Command, o *runOptions) error {
	if err := o.validate(); err != nil {
		return c.usageErr(cmd, err)
	}
	log := newLogger(c.stderr, o.LogLevel, o.LogFormat)
	// Packages log through the default logger (e.g. lease warnings).
	slog.SetDefault(log)
	log.Info("vxlan6d starting", "version", c.version, "node", o.NodeName, "prefix", o.Etcd.Prefix, "leaseTTL", o.LeaseTTL.String())
	o.Version = c.version
	ctx, stop := signalContext()
	defer stop()
	run := c.runDaemon
	if run == nil {
		run = daemon.Run
	}
	if err := run(ctx, o.Options, log); err != nil {
		log.Error("vxlan6d stopped", "err", err)
		return c.fail(cmd, err)
	}
	return nil
}

func (c *cli) etcdCmd() *cobra.Command {
	var cfg etcdconf.Config
	var level, format string
	cmd := &cobra.Command{
		Use:   "etcd --data-dir D [--listen-client-urls U[,U]] [TLS, cluster flags]",
		Short: "embedded etcd for labs and tests (default: loopback only)",
		// Its unit reads vxlan6-etcd.env; the daemon's file is not its own.
		Annotations: map[string]string{ownEnvFileAnnotation: "true"},
		Args:        c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			exposed, err := checkEtcdServer(&cfg)
			if err != nil {
				return c.usageErr(cmd, err)
			}
			if _, err := parseLevel(level); err != nil {
				return c.usageErr(cmd, err)
			}
			if c.startEtcd == nil {
				// Checked here, so usage errors are vxlan6d's own; the
				// program execed checks again and warns.
				return c.execEtcdProgram(cmd)
			}
			log := newLogger(c.stderr, level, format)
			slog.SetDefault(log)
			for _, u := range exposed {
				log.Warn("etcd serves clients in cleartext beyond this host: anyone who reaches it can rewrite the overlay's routes; prefer https:// with --client-cert-auth", "url", u)
			}
			srv, err := c.startEtcd(cfg)
			if err != nil {
				return c.fail(cmd, err)
			}
			defer srv.Close()
			ctx, stop := signalContext()
			defer stop()
			select {
			case <-ctx.Done():
				log.Info("embedded etcd stopping")
				return nil
			case err := <-srv.Err():
				return c.fail(cmd, err)
			}
		},
	}
	addEtcdServerFlags(cmd.Flags(), &cfg)
	addLogFlags(cmd.Flags(), &level, &format)
	return cmd
}

// manCmd writes the man pages of every command (for make dist); hidden
// because an operator reads them, not writes them.
func (c *cli) manCmd() *cobra.Command {
	return &cobra.Command{
		Use:         "man DIR",
		Short:       "write the man pages of every command into DIR",
		Hidden:      true,
		Annotations: map[string]string{noEnvAnnotation: "true"},
		Args:        c.nArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return c.fail(cmd, fmt.Errorf("create man directory: %w", err))
			}
			hdr := &doc.GenManHeader{Title: "VXLAN6D", Section: "8", Source: "vxlan6 " + c.version, Manual: "vxlan6 manual"}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return c.fail(cmd, fmt.Errorf("write man pages to %s: %w", args[0], err))
			}
			fmt.Fprintf(c.stdout, "man pages written to %s\n", args[0])
			return nil
		},
	}
}
