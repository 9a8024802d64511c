// Package etcdserver runs a single-member etcd in process, so a lab cluster,
// the demo and the tests need no separate etcd install. It is not meant to
// replace a real etcd cluster in production.
package etcdserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/vxlan6/vxlan6/overlay/etcdserver/etcdconf"
)

// Config describes the member; it lives in package etcdconf so that the
// CLI can parse it without linking the server.
type Config = etcdconf.Config

// Server is a running member.
type Server struct {
	etcd  *embed.Etcd
	level zap.AtomicLevel
	// Endpoints are the client URLs, ready for clientv3.Config.Endpoints.
	Endpoints []string
}

// peerPortTries bounds how often Start picks another peer port when the
// one it picked was taken before etcd could bind it.
const peerPortTries = 5

// freePort picks the default peer port (a seam for the test of the retry).
var freePort = FreePort

// Start launches the member and waits until it serves clients. A peer port
// Start picked itself (no PeerURL) can be taken by another process between
// the pick and etcd's bind; Start then picks another, up to peerPortTries
// times.
func Start(cfg Config) (*Server, error) {
	for try := 1; ; try++ {
		s, err := start(cfg)
		if err == nil || cfg.PeerURL != "" || try == peerPortTries || !errors.Is(err, syscall.EADDRINUSE) {
			return s, err
		}
		slog.Debug("embedded etcd: picked peer port was taken, picking another", "err", err)
	}
}

func start(cfg Config) (*Server, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd: create data dir %s: %w", cfg.DataDir, err)
	}
	ec, level, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcd: start member in %s: %w", cfg.DataDir, err)
	}
	if err := waitReady(e, cfg.StartTimeout); err != nil {
		return nil, err
	}
	slog.Info("embedded etcd ready", "clientURLs", strings.Join(cfg.ClientURLs, ","), "dataDir", cfg.DataDir)
	return &Server{etcd: e, level: level, Endpoints: append([]string(nil), cfg.ClientURLs...)}, nil
}

// withDefaults checks the required fields and fills the defaults.
func withDefaults(cfg Config) (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("etcd: data dir is required")
	}
	if len(cfg.ClientURLs) == 0 {
		return cfg, errors.New("etcd: at least one client URL is required")
	}
	if cfg.Name == "" {
		cfg.Name = "vxlan6"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	if cfg.PeerURL == "" {
		port, err := freePort()
		if err != nil {
			return cfg, fmt.Errorf("etcd: pick peer port: %w", err)
		}
		cfg.PeerURL = "http://127.0.0.1:" + strconv.Itoa(port)
	}
	return cfg, nil
}

// embedConfig is etcd's config for cfg, and the level of its logger.
func embedConfig(cfg Config) (*embed.Config, zap.AtomicLevel, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	level, lg, err := newLogger(cfg.LogLevel)
	if err != nil {
		return nil, level, err
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.LogLevel = cfg.LogLevel
	ec.LogOutputs = []string{"stderr"}
	ec.UnsafeNoFsync = cfg.NoFsync
	if err := applyURLs(ec, cfg); err != nil {
		return nil, level, err
	}
	if err := applySecurity(ec, cfg); err != nil {
		return nil, level, err
	}
	return ec, level, nil
}

// newLogger is our own zap logger for etcd, so Close can silence it: etcd
// reports its listeners closing on a clean shutdown as errors with stack
// traces.
func newLogger(logLevel string) (zap.AtomicLevel, *zap.Logger, error) {
	level, err := zap.ParseAtomicLevel(logLevel)
	if err != nil {
		return level, nil, fmt.Errorf("etcd: log level %q: %w", logLevel, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	lg, err := zc.Build()
	if err != nil {
		return level, nil, fmt.Errorf("etcd: build logger: %w", err)
	}
	return level, lg, nil
}

// waitReady waits until e serves clients; on failure or timeout it stops e.
func waitReady(e *embed.Etcd, timeout time.Duration) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd: member failed while starting: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return fmt.Errorf("etcd: member not ready after %s", timeout)
	}
}

// Err reports a fatal error of the running member.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member and releases its listeners.
func (s *Server) Close() {
	s.level.SetLevel(zap.FatalLevel)
	s.etcd.Close()
}

// applyURLs sets the client and peer URLs and the initial cluster.
func applyURLs(ec *embed.Config, cfg Config) error {
	var curls, adv []url.URL
	for _, s := range cfg.ClientURLs {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("etcd: client URL %q: %w", s, err)
		}
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			// A stale socket from a killed run would make listen fail.
			_ = os.Remove(unixPath(u))
		} else {
			adv = append(adv, *u)
		}
		curls = append(curls, *u)
	}
	if len(cfg.AdvertiseClientURLs) > 0 {
		adv = nil
		for _, s := range cfg.AdvertiseClientURLs {
			u, err := url.Parse(s)
			if err != nil {
				return fmt.Errorf("etcd: advertise client URL %q: %w", s, err)
			}
			adv = append(adv, *u)
		}
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return fmt.Errorf("etcd: peer URL %q: %w", cfg.PeerURL, err)
	}
	if len(adv) == 0 {
		// etcd insists that advertised URLs are host:port, which a socket
		// path is not; a single member advertises to nobody, so any
		// well-formed URL does.
		u, _ := url.Parse("http://localhost:2379")
		adv = []url.URL{*u}
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = curls, adv
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.ClusterToken != "" {
		ec.InitialClusterToken = cfg.ClusterToken
	}
	return nil
}

// applySecurity sets client TLS and the auth token TTL.
func applySecurity(ec *embed.Config, cfg Config) error {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return errors.New("etcd: the TLS certificate and key files must be given together")
	}
	if cfg.ClientCertAuth && cfg.TrustedCAFile == "" {
		return errors.New("etcd: client certificate auth needs the trusted CA file")
	}
	if cfg.TrustedCAFile != "" && cfg.CertFile == "" {
		return errors.New("etcd: a trusted CA file needs the server's TLS certificate and key")
	}
	ec.ClientTLSInfo.CertFile = cfg.CertFile
	ec.ClientTLSInfo.KeyFile = cfg.KeyFile
	ec.ClientTLSInfo.TrustedCAFile = cfg.TrustedCAFile
	ec.ClientTLSInfo.ClientCertAuth = cfg.ClientCertAuth
	ec.ClientAutoTLS = false
	for _, u := range ec.ListenClientUrls {
		tlsURL := u.Scheme == "https" || u.Scheme == "unixs"
		if tlsURL && cfg.CertFile == "" {
			return fmt.Errorf("etcd: client URL %s needs a TLS certificate and key", u.String())
		}
	}
	if cfg.AuthTokenTTL < 0 || (cfg.AuthTokenTTL > 0 && cfg.AuthTokenTTL < time.Second) {
		return fmt.Errorf("etcd: auth token TTL %s: want at least 1s", cfg.AuthTokenTTL)
	}
	if cfg.AuthTokenTTL > 0 {
		ec.AuthTokenTTL = uint(cfg.AuthTokenTTL / time.Second)
	}
	return nil
}

func unixPath(u *url.URL) string {
	if u.Path != "" {
		return u.Host + u.Path
	}
	return u.Host
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
