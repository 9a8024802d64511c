package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireTool returns the path of an external tool the test needs: found on
// PATH, else in one of dirs (e.g. GOPATH/bin for a `go install`ed one).
// Missing, the test is skipped naming install (how to get it), or fails
// under CI=true: .ci/deps.sh installs every tool the tests use, so a
// missing one there is a broken CI machine, not a reason to skip.
func RequireTool(t testing.TB, name, install string, dirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (%s; .ci/deps.sh installs it)", name, install)
	}
	t.Skipf("%s not installed (%s)", name, install)
	return ""
}
