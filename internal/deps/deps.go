// Package deps pins the modules the project builds on while its packages are
// being written, so go.mod/go.sum hold them from the start. Remove once every
// import below is used by a real package.
package deps

import (
	_ "github.com/containernetworking/cni/libcni"
	_ "github.com/containernetworking/cni/pkg/skel"
	_ "github.com/containernetworking/cni/pkg/types/100"
	_ "github.com/containernetworking/cni/pkg/version"
	_ "github.com/containernetworking/plugins/pkg/ip"
	_ "github.com/containernetworking/plugins/pkg/ipam"
	_ "github.com/containernetworking/plugins/pkg/netlinksafe"
	_ "github.com/containernetworking/plugins/pkg/ns"
	_ "github.com/containernetworking/plugins/pkg/testutils"
	_ "github.com/gofrs/flock"
	_ "github.com/vishvananda/netlink"
	_ "go.etcd.io/etcd/client/v3/concurrency"
	_ "golang.org/x/sys/unix"
)
