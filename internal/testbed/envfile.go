package testbed

import "os"

// Every vxlan6d command reads /etc/vxlan6/vxlan6d.env when it exists (the
// file make install and the .deb put there). A testbed's hosts are
// namespaces on this machine and that file, naming the machine's own etcd,
// TLS files and VTEP, is none of theirs: no vxlan6d a test or benchmark
// starts through this package reads it, unless the test sets
// VXLAN6D_ENV_FILE itself (per command, as e2e's docs test does).
func init() {
	if _, ok := os.LookupEnv("VXLAN6D_ENV_FILE"); !ok {
		os.Setenv("VXLAN6D_ENV_FILE", os.DevNull)
	}
}
