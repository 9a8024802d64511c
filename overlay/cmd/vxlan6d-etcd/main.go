// Command vxlan6d-etcd is vxlan6d's CLI with etcd's server linked: it is
// what `vxlan6d etcd` runs (vxlan6d execs it, keeping the PID), so the
// daemon does not carry the embedded etcd's code and memory. Installed
// beside vxlan6d; `vxlan6d-etcd etcd --data-dir D ...` works directly too.
package main

import (
	"os"

	"github.com/vxlan6/vxlan6/overlay/admin"
	"github.com/vxlan6/vxlan6/overlay/etcdserver"
	"github.com/vxlan6/vxlan6/overlay/etcdserver/etcdconf"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(admin.MainWithEtcd(os.Args[1:], version, os.Stdout, os.Stderr, start))
}

// start is etcdserver.Start behind admin's interface (a nil *Server must
// not become a non-nil interface).
func start(cfg etcdconf.Config) (admin.EtcdServer, error) {
	s, err := etcdserver.Start(cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}
