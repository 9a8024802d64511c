// Package admin is vxlan6d's command line (spf13/cobra): `run` (the daemon,
// in package daemon, also what a bare `vxlan6d` does), the lab `etcd`, and
// the admin commands that read and write the cluster's state in etcd
// (config, annotate, leases, nodes, lease) or look at this host (status,
// ipam).
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vxlan6/vxlan6/overlay/daemon"
)

// Exit codes of the CLI.
const (
	ExitOK    = 0
	ExitError = 1 // runtime failure, invalid VTEP choice, invalid config
	ExitUsage = 2 // unknown flag, bad flag value, bad arguments
)

const rootLong = `vxlan6d — the vxlan6 overlay daemon and its admin commands.

With no command, vxlan6d runs the daemon ("vxlan6d run"): it picks this
host's VTEP, leases the node's pod subnet in etcd, writes the subnet file the
vxlan6 CNI plugin reads and keeps one fdb + neighbour + route entry per peer
node in step with etcd. Stopping it (SIGTERM) leaves the VXLAN device, its
peers and the lease in place, so a restart does not disturb traffic.

Every flag can also be set by an environment variable VXLAN6D_<FLAG>, dashes
as underscores (--etcd-endpoints = VXLAN6D_ETCD_ENDPOINTS), or by the same
variable in the env file (--env-file, default ` + DefaultEnvFile + ` when it
exists; systemd EnvironmentFile syntax). A flag wins over the environment,
which wins over the env file.`

// Main is the whole CLI; the binary's main only calls it. It returns the
// process exit code.
func Main(args []string, version string, stdout, stderr io.Writer) int {
	return newCLI(args, version, stdout, stderr).execute(args)
}

func newCLI(args []string, version string, stdout, stderr io.Writer) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: os.LookupEnv, version: version,
		defaultEnvFile: DefaultEnvFile, args: args}
}

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)
	version        string
	// defaultEnvFile is read when it exists and --env-file is not given
	// ("" in tests: no host file leaks into them).
	defaultEnvFile string
	envFile        string
	// runDaemon is daemon.Run; tests replace it to see the parsed options.
	runDaemon func(context.Context, daemon.Options, *slog.Logger) error
	// args is the command line as given: `vxlan6d etcd` hands it on
	// unchanged to vxlan6d-etcd.
	args []string
	// startEtcd runs the embedded etcd in process (vxlan6d-etcd); nil in
	// vxlan6d, whose `etcd` execs vxlan6d-etcd instead (etcdlaunch.go).
	startEtcd StartEtcdFunc
	// exec is syscall.Exec; tests replace it.
	exec func(argv0 string, argv, envv []string) error
}

// exitError carries an exit code through cobra; its message has been
// printed already.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// execute runs one command line and returns its exit code.
func (c *cli) execute(args []string) int {
	root := c.rootCmd()
	root.SetArgs(fixSingleDash(args, allLongFlags(root)))
	err := root.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	default:
		// cobra's own errors: unknown command, wrong arguments.
		fmt.Fprintf(c.stderr, "vxlan6d: %v\nRun 'vxlan6d --help' for usage.\n", err)
		return ExitUsage
	}
}

func (c *cli) rootCmd() *cobra.Command {
	var o runOptions
	root := &cobra.Command{
		Use:     "vxlan6d",
		Short:   "the vxlan6 overlay daemon and its admin commands",
		Long:    rootLong,
		Version: c.version,
		Args:    c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runCommand(cmd, &o)
		},
		PersistentPreRunE: c.applyEnvironment,
		SilenceErrors:     true,
		SilenceUsage:      true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetVersionTemplate(fmt.Sprintf("vxlan6d {{.Version}} (%s)\n", runtime.Version()))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return c.usageErr(cmd, flagError(err))
	})
	root.PersistentFlags().StringVar(&c.envFile, "env-file", "", "file of VXLAN6D_* variables, systemd EnvironmentFile syntax (default "+DefaultEnvFile+" when it exists)")
	addRunFlags(root.Flags(), &o)
	root.AddCommand(c.runCmd(), c.etcdCmd(), c.versionCmd(), c.manCmd(),
		c.configCmd(), c.annotateCmd(), c.leasesCmd(), c.nodesCmd(), c.leaseCmd(),
		c.statusCmd(), c.ipamCmd())
	return root
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:         "version",
		Short:       "print the version",
		Annotations: map[string]string{noEnvAnnotation: "true"},
		Args:        c.noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(c.stdout, "vxlan6d %s\n", c.version)
			return nil
		},
	}
}

// noEnvAnnotation marks commands that read no variables and no env file;
// ownEnvFileAnnotation marks a service with an env file of its own (the
// lab etcd: vxlan6-etcd.env), which does not read the daemon's by default.
const (
	noEnvAnnotation      = "vxlan6d/no-env"
	ownEnvFileAnnotation = "vxlan6d/own-env-file"
)

// applyEnvironment fills every flag of the command that is not on the
// command line from VXLAN6D_<FLAG>, then from the env file.
func (c *cli) applyEnvironment(cmd *cobra.Command, _ []string) error {
	// Commands about the CLI itself need no settings: make dist runs them
	// on a build host whose env file is none of their business.
	for p := cmd; p != nil; p = p.Parent() {
		if p.Annotations[noEnvAnnotation] != "" || p.Name() == "completion" {
			return nil
		}
	}
	path, explicit := c.envFile, c.envFile != ""
	if !explicit {
		if v, ok := c.getenv(EnvPrefix + "ENV_FILE"); ok && v != "" {
			path, explicit = v, true
		} else if cmd.Annotations[ownEnvFileAnnotation] == "" {
			path = c.defaultEnvFile
		}
	}
	var file map[string]string
	if path != "" {
		var err error
		file, err = readEnvFile(path)
		if errors.Is(err, os.ErrNotExist) && !explicit {
			file, err = nil, nil
		}
		if err != nil {
			return c.fail(cmd, err)
		}
	}
	if err := applyEnv(cmd.Flags(), c.getenv, file); err != nil {
		return c.usageErr(cmd, err)
	}
	return nil
}

// noArgs refuses positional arguments with a usage error naming the first.
func (c *cli) noArgs() cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 && cmd.HasAvailableSubCommands() {
			return c.usageErr(cmd, fmt.Errorf("unknown command %q", args[0]))
		}
		if len(args) > 0 {
			return c.usageErr(cmd, fmt.Errorf("unexpected argument %q", args[0]))
		}
		return nil
	}
}

// nArgs wants between min and max (max < 0: any number) positional arguments.
func (c *cli) nArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return c.usageErr(cmd, fmt.Errorf("wrong number of arguments (%d); usage: %s", len(args), cmd.UseLine()))
		}
		return nil
	}
}

// cmdName is how messages name the command: "vxlan6d config put".
func cmdName(cmd *cobra.Command) string { return cmd.CommandPath() }

func (c *cli) usageErr(cmd *cobra.Command, err error) error {
	fmt.Fprintf(c.stderr, "%s: %v\nRun '%s --help' for usage.\n", cmdName(cmd), err, cmd.CommandPath())
	return &exitError{ExitUsage}
}

func (c *cli) fail(cmd *cobra.Command, err error) error {
	fmt.Fprintf(c.stderr, "%s: %v\n", cmdName(cmd), err)
	return &exitError{ExitError}
}

var (
	pflagInvalid   = regexp.MustCompile(`^invalid argument (".*") for "(?:-[a-zA-Z], )?(--[a-z0-9-]+)" flag: `)
	pflagShorthand = regexp.MustCompile(`^unknown shorthand flag: '.' in -([a-z][a-z0-9-]+)`)
)

// flagError rewrites pflag's messages into the ones vxlan6d always gave:
// "invalid value "x" for flag --lease-ttl: ...", and a long flag spelled
// with one dash that is no flag at all gets the two-dash spelling.
func flagError(err error) error {
	msg := err.Error()
	msg = pflagInvalid.ReplaceAllString(msg, "invalid value $1 for flag $2: ")
	if m := pflagShorthand.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown flag: --%s (long flags take two dashes; -%s is no flag)", m[1], m[1])
	}
	return errors.New(msg)
}

// longFlags are the names of the long flags of fs.
func longFlags(fs *pflag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { m[f.Name] = true })
	return m
}

// allLongFlags are the long flags of every command under root.
func allLongFlags(root *cobra.Command) map[string]bool {
	m := longFlags(root.PersistentFlags())
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for k := range longFlags(c.LocalFlags()) {
			m[k] = true
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return m
}

var singleDashFlag = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// fixSingleDash turns "-etcd-endpoints" into "--etcd-endpoints" for every
// known long flag: Go's flag package (vxlan6d before cobra) accepted one
// dash, pflag reads "-etcd" as the shorthands -e -t -c -d. Arguments after
// "--" are left alone.
func fixSingleDash(args []string, known map[string]bool) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if m := singleDashFlag.FindStringSubmatch(a); m != nil && known[m[1]] {
			out[i] = "-" + a
		}
	}
	return out
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
