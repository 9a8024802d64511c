package testbed

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestEtcdClusterTLSAuth: StartEtcdCluster gives `vxlan6d etcd` processes
// that demand client certificates, with auth on: EtcdUser reads and writes
// <prefix>/ and nothing else, root everything.
func TestEtcdClusterTLSAuth(t *testing.T) {
	b := New(t, Options{})
	c := b.StartEtcdCluster(EtcdClusterOptions{TLS: true, Auth: true})
	user := c.client(EtcdUser, c.Password, c.UserCert)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := user.Put(ctx, b.Prefix+"/x", "1"); err != nil {
		t.Errorf("%s may write under %s/: %v", EtcdUser, b.Prefix, err)
	}
	if _, err := user.Put(ctx, "/elsewhere", "1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s wrote outside the prefix: %v", EtcdUser, err)
	}
	if _, err := user.Get(ctx, b.Prefix+"x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s read %sx (outside %s/): %v", EtcdUser, b.Prefix, b.Prefix, err)
	}
	if _, err := b.Client().Put(ctx, "/elsewhere", "1"); err != nil {
		t.Errorf("root: %v", err)
	}
	b.PutIPv6Config()
}
