package etcdserver

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "etcd.sock")
	s, err := Start(Config{DataDir: filepath.Join(dir, "data"), ClientURLs: []string{sock}, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := cli.Get(ctx, "/k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", r, err)
	}
}

// TestStartPeerPortTaken: when the peer port Start picked is taken before
// etcd binds it (another test, another process), Start picks another
// instead of failing.
func TestStartPeerPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	freePort = func() (int, error) {
		picks++
		if picks == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return FreePort()
	}
	t.Cleanup(func() { freePort = FreePort })
	dir := t.TempDir()
	s, err := Start(Config{DataDir: filepath.Join(dir, "data"), ClientURLs: []string{"unix://" + filepath.Join(dir, "etcd.sock")}, NoFsync: true})
	if err != nil {
		t.Fatalf("Start with its first peer port taken: %v", err)
	}
	s.Close()
	if picks != 2 {
		t.Errorf("picked %d peer ports, want 2", picks)
	}
}
