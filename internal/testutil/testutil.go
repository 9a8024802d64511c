// Package testutil holds the few helpers every kernel- or etcd-touching test
// of this repo shares: a root check, names unique to a test, and an embedded
// etcd on a unix socket (reachable from every network namespace), and a
// network namespace removed with the test.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/overlay/etcdserver"
)

// RequireRoot skips the test when not running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and links (CI runs as root)")
	}
}

// NewNS creates a network namespace (pkg/testutils.NewNS, so its name is
// unique) that is closed and unmounted when the test ends.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if err := testutils.UnmountNS(n); err != nil {
			t.Logf("unmount netns %s: %v", n.Path(), err)
		}
	})
	return n
}

// UniqueName returns prefix plus 6 random hex characters. Keep prefix short:
// link names are limited to 15 characters.
func UniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Etcd is an embedded single-member etcd for one test.
type Etcd struct {
	Server    *etcdserver.Server
	Endpoints []string // "unix:///tmp/.../etcd.sock"
	Client    *clientv3.Client
	SockPath  string
}

// StartEtcd starts an embedded etcd on a unix socket in a temp dir and stops
// it when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	dir, err := os.MkdirTemp("", "vx6etcd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "etcd.sock")
	srv, err := etcdserver.Start(etcdserver.Config{
		DataDir:    filepath.Join(dir, "data"),
		ClientURLs: []string{"unix://" + sock},
		NoFsync:    true,
	})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return &Etcd{Server: srv, Endpoints: srv.Endpoints, Client: cli, SockPath: sock}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
