package etcdclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// explain adds the reason a TLS dial failed to err: the etcd client hides
// a handshake failure (unknown CA, wrong name, certificate refused by the
// server) inside gRPC's reconnect loop and reports only "context deadline
// exceeded". A handshake of our own, with the same tls.Config, to each TLS
// endpoint finds it.
func (e *Options) explain(ctx context.Context, cfg clientv3.Config, err error) error {
	if cfg.TLS == nil {
		return err
	}
	// In parallel: an unreachable endpoint must not delay the others' verdict.
	errs := make([]error, len(cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range cfg.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = handshake(ctx, ep, cfg.TLS)
		}()
	}
	wg.Wait()
	for i, herr := range errs {
		if herr != nil {
			return fmt.Errorf("TLS handshake with %s failed: %w (etcd client: %v)", cfg.Endpoints[i], herr, err)
		}
	}
	return err
}

// handshake dials a TLS endpoint (https:// or unixs://) and runs the TLS
// handshake; it returns only TLS errors: an endpoint that cannot be reached
// at all, or is not TLS, returns nil (the etcd client's error says enough).
func handshake(ctx context.Context, ep string, base *tls.Config) error {
	u, err := url.Parse(ep)
	if err != nil {
		return nil
	}
	network, addr, name := "tcp", u.Host, u.Hostname()
	switch u.Scheme {
	case "https":
	case "unixs":
		// Like the etcd client: the socket file's name is the server name.
		network, addr = "unix", u.Host+u.Path
		name = path.Base(addr)
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil
	}
	defer raw.Close()
	tc := base.Clone()
	if tc.ServerName == "" {
		tc.ServerName = name
	}
	tc.NextProtos = []string{"h2"}
	conn := tls.Client(raw, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) {
			return fmt.Errorf("%s does not speak TLS: %w", addr, err)
		}
		return err
	}
	// With TLS 1.3 the server checks our certificate after the client's
	// handshake returns; its verdict arrives as an alert on the first read.
	// A healthy server waits for the HTTP/2 preface: the read times out.
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	var b [1]byte
	_, err = conn.Read(b[:])
	var ne net.Error
	if err == nil || errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return fmt.Errorf("server refused the TLS session: %w", err)
}
