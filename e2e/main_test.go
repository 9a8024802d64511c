package e2e

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs three tests at once unless -test.parallel says otherwise.
// Most of a multi-host test is waiting (daemons, pings, lease TTLs), and
// this package holds what used to be two packages run side by side
// (overlay/daemon's multi-host tests moved here), so the default of
// GOMAXPROCS (2 on these machines) would run them longer than before.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "3")
	}
	os.Exit(m.Run())
}
