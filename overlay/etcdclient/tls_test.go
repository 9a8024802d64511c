package etcdclient

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testpki"
	"github.com/vxlan6/vxlan6/overlay/etcdserver"
)

// tlsEtcd starts an in-process etcd on loopback that demands client
// certificates of ca.
func tlsEtcd(t *testing.T, ca *testpki.CA, dir string) string {
	t.Helper()
	srvPair := ca.Server(t, "server", []net.IP{net.ParseIP("127.0.0.1")})
	port, err := etcdserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("https://127.0.0.1:%d", port)
	s, err := etcdserver.Start(etcdserver.Config{
		DataDir: filepath.Join(dir, "data"), ClientURLs: []string{ep}, NoFsync: true,
		CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return ep
}

// TestTLSFailureSaysSo: a wrong CA, or no client certificate, fails with
// the TLS reason (x509 ..., certificate required), not only "context
// deadline exceeded", in ConnectOnce's error and in Connect's log.
func TestTLSFailureSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd: skipped with -short")
	}
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	other := testpki.NewCA(t, dir, "other")
	ep := tlsEtcd(t, ca, dir)
	cl := ca.Client(t, "vxlan6")

	good := Options{Endpoints: []string{ep}, Prefix: "/p", CAFile: ca.CertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cli, err := good.ConnectOnce(ctx)
	if err != nil {
		t.Fatalf("right CA and client certificate: %v", err)
	}
	cli.Close()

	// Each failure waits out the client's timeout: run them side by side.
	t.Run("failures", func(t *testing.T) {
		for name, c := range map[string]struct {
			o    Options
			want string
		}{
			"wrong CA":              {Options{Endpoints: []string{ep}, Prefix: "/p", CAFile: other.CertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile}, "x509"},
			"no client certificate": {Options{Endpoints: []string{ep}, Prefix: "/p", CAFile: ca.CertFile}, "certificate required"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				_, err := c.o.ConnectOnce(ctx)
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ep) {
					t.Errorf("want an error naming %s and %q, got %v", ep, c.want, err)
				} else {
					t.Logf("%v", err)
				}
			})
		}
		t.Run("Connect logs it", func(t *testing.T) {
			t.Parallel()
			var logb bytes.Buffer
			bad := Options{Endpoints: []string{ep}, Prefix: "/p", CAFile: other.CertFile, CertFile: cl.CertFile, KeyFile: cl.KeyFile}
			cctx, ccancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer ccancel()
			if _, err := bad.Connect(cctx, slog.New(slog.NewTextHandler(&logb, nil))); err == nil {
				t.Fatal("Connect with a wrong CA succeeded")
			}
			if !strings.Contains(logb.String(), "x509") {
				t.Errorf("Connect's retry log does not say x509:\n%s", logb.String())
			}
		})
	})
}
