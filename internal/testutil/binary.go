package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Packages of the project's programs, by binary name.
var binaryPackages = map[string]string{
	"vxlan6":       "./plugins/vxlan6",
	"vxlan6d":      "./overlay/cmd/vxlan6d",
	"vxlan6d-etcd": "./overlay/cmd/vxlan6d-etcd",
}

// companions are built with a binary into the same directory: `vxlan6d
// etcd` execs the vxlan6d-etcd beside it.
var companions = map[string][]string{"vxlan6d": {"vxlan6d-etcd"}}

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Binary builds one of the project's programs ("vxlan6", "vxlan6d" or
// "vxlan6d-etcd") once per test process and returns its path; vxlan6d comes
// with vxlan6d-etcd beside it, which its etcd command runs. A test run needs
// no prior `make build`; the Go build cache makes repeated builds cheap. The
// directory holding it is also a valid CNI_PATH entry for the plugin.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	for _, c := range companions[name] {
		buildLocked(t, c)
	}
	return buildLocked(t, name)
}

// buildLocked builds name unless built already; buildMu is held.
func buildLocked(t testing.TB, name string) string {
	t.Helper()
	if p, ok := built[name]; ok {
		return p
	}
	pkg, ok := binaryPackages[name]
	if !ok {
		t.Fatalf("unknown binary %q", name)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if buildDir == "" {
		buildDir, err = processBinDir()
		if err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(buildDir, name)
	// Same flags as `make build`, so tests exercise the binary that ships and,
	// after `make build` (make test runs it first), only link: -trimpath is
	// part of every package's build cache key, and without it a cold cache
	// compiles the whole dependency tree a second time.
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[name] = out
	return out
}

// processBinDir returns <tmp>/vx6bin/<pid>, first removing the directories
// of test processes that no longer run. Tests reuse one build across a
// process, so no single test's Cleanup may remove it; pruning dead processes'
// directories keeps leftovers bounded to the processes running right now.
func processBinDir() (string, error) {
	root := filepath.Join(os.TempDir(), "vx6bin")
	if entries, err := os.ReadDir(root); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	dir := filepath.Join(root, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build dir %s: %w", dir, err)
	}
	return dir, nil
}

// ModuleRoot returns the repository root (the directory holding go.mod).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vxlan6 module")
	}
	return filepath.Dir(mod), nil
}
