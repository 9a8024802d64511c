// Command vxlan6d is the vxlan6 overlay daemon and its admin CLI; all the
// work is in package admin (the command line) and daemon (the daemon) so
// that it can be tested.
package main

import (
	"os"

	"github.com/vxlan6/vxlan6/overlay/admin"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(admin.Main(os.Args[1:], version, os.Stdout, os.Stderr))
}
