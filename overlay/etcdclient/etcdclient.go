// Package etcdclient says how vxlan6d and its admin commands reach etcd: the
// endpoint and TLS options, their validation, and a dial that proves etcd
// answers (with a retrying variant for the daemon and a one-shot one for the
// admin commands).
package etcdclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vxlan6/vxlan6/internal/backoff"
	"github.com/vxlan6/vxlan6/overlay/lease"
)

// Options say how to reach etcd; every subcommand that talks to etcd takes them.
type Options struct {
	Endpoints []string
	Prefix    string
	CAFile    string
	CertFile  string
	KeyFile   string
	Username  string
	Password  string
	// PasswordFile holds the password (mode 0600 or stricter); Validate
	// reads it into Password. Unlike --etcd-password it shows up neither in
	// argv (ps) nor in a unit file.
	PasswordFile string

	// passwordFrom names where Password came from once Validate resolved
	// it, so a second Validate does not read the file again.
	passwordFrom string
}

// DefaultEndpoint is used when no endpoint is given.
const DefaultEndpoint = "http://127.0.0.1:2379"

// Validate checks what can be checked without contacting etcd, fills the
// default endpoint, trims the prefix's trailing slashes and reads the
// password from its file or systemd credential. It refuses to send a
// password, or to mix TLS with cleartext, over a cleartext endpoint.
func (e *Options) Validate() error {
	if len(e.Endpoints) == 0 {
		e.Endpoints = []string{DefaultEndpoint}
	}
	for _, ep := range e.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return err
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
	if err := e.resolvePassword(); err != nil {
		return err
	}
	if e.Password != "" && e.Username == "" {
		return fmt.Errorf("the etcd password (%s) needs --etcd-username", e.passwordFrom)
	}
	if e.Username != "" && e.Password == "" {
		return fmt.Errorf("--etcd-username %q needs a password: --etcd-password-file, %s or the systemd credential %q", e.Username, "VXLAN6D_ETCD_PASSWORD", CredentialName)
	}
	return e.checkTransport()
}

func checkEndpoint(ep string) error {
	if !strings.Contains(ep, "://") {
		return fmt.Errorf("--etcd-endpoints: %q has no scheme: write https://%s (TLS) or unix:///path (want e.g. https://[2001:db8::10]:2379 or unix:///run/etcd.sock)", ep, ep)
	}
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
	return nil
}

// checkTransport refuses what would send secrets, or traffic meant to be
// protected, in clear: credentials with an http:// endpoint, TLS files with
// one, and a mix of TLS and cleartext endpoints (the client would use both).
// unix:// is local to the host and allowed with anything.
func (e *Options) checkTransport() error {
	var tlsEP, clearEP string
	for _, ep := range e.Endpoints {
		switch scheme(ep) {
		case "https", "unixs":
			if tlsEP == "" {
				tlsEP = ep
			}
		case "http":
			if clearEP == "" {
				clearEP = ep
			}
		}
	}
	switch {
	case clearEP == "":
		return nil
	case e.Username != "":
		return fmt.Errorf("--etcd-endpoints: %s is cleartext (http://): refusing to send the password of etcd user %q in clear; use https:// (or unix:// on this host)", clearEP, e.Username)
	case tlsEP != "":
		return fmt.Errorf("--etcd-endpoints: %s is cleartext (http://) while %s uses TLS: use https:// for every endpoint", clearEP, tlsEP)
	case e.CAFile != "" || e.CertFile != "":
		return fmt.Errorf("--etcd-endpoints: %s is cleartext (http://) but TLS files (--etcd-cafile/--etcd-certfile) are given: use https://", clearEP)
	}
	return nil
}

func scheme(ep string) string {
	s, _, _ := strings.Cut(ep, "://")
	return s
}

// ClientConfig builds the etcd client config. A bad TLS file is an error now,
// not something to retry.
func (e *Options) ClientConfig() (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: 5 * time.Second,
		// Keepalive pings notice a dead etcd, so the watch breaks and the
		// daemon resyncs after reconnecting instead of waiting forever.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             e.Username,
		Password:             e.Password,
		// The daemon logs etcd trouble itself, once per retry, via slog;
		// the client's zap logger would repeat every gRPC reconnect.
		Logger: zap.NewNop(),
	}
	if e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" {
		info := transport.TLSInfo{CertFile: e.CertFile, KeyFile: e.KeyFile, TrustedCAFile: e.CAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return cfg, fmt.Errorf("etcd TLS (--etcd-cafile %q, --etcd-certfile %q, --etcd-keyfile %q): %w", e.CAFile, e.CertFile, e.KeyFile, err)
		}
		cfg.TLS = tc
	} else if hasTLSEndpoint(e.Endpoints) {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return cfg, nil
}

func hasTLSEndpoint(eps []string) bool {
	for _, ep := range eps {
		if s := scheme(ep); s == "https" || s == "unixs" {
			return true
		}
	}
	return false
}

// dialOnce connects and proves etcd answers (clientv3.New alone succeeds
// without a server).
func (e *Options) dialOnce(ctx context.Context, cfg clientv3.Config) (*clientv3.Client, error) {
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, e.explain(ctx, cfg, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Get(cctx, lease.ConfigKeyFor(e.Prefix), clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, e.explain(ctx, cfg, err)
	}
	return cli, nil
}

// Connect dials etcd, retrying with backoff (and saying so) while it is
// unreachable, until ctx ends.
func (e *Options) Connect(ctx context.Context, log *slog.Logger) (*clientv3.Client, error) {
	cfg, err := e.ClientConfig()
	if err != nil {
		return nil, err
	}
	eps := strings.Join(e.Endpoints, ",")
	var cli *clientv3.Client
	attempts := 0
	err = backoff.Retry(ctx, backoff.New(500*time.Millisecond, 5*time.Second), func() (err error) {
		attempts++
		cli, err = e.dialOnce(ctx, cfg)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		log.Warn("etcd unreachable, retrying", "endpoints", eps, "attempt", attempt, "retryIn", wait.String(), "err", err)
	})
	if err != nil {
		return nil, err
	}
	if attempts > 1 {
		log.Info("etcd reachable", "endpoints", eps, "attempts", attempts)
	}
	return cli, nil
}

// ConnectOnce is for the admin subcommands: one bounded try, a clear error.
func (e *Options) ConnectOnce(ctx context.Context) (*clientv3.Client, error) {
	cfg, err := e.ClientConfig()
	if err != nil {
		return nil, err
	}
	cli, err := e.dialOnce(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(e.Endpoints, ","), err)
	}
	return cli, nil
}
