package dist

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// TestMakeInstallUninstall: `make install DESTDIR=...` puts binaries, units
// (ExecStart rewritten to SBINDIR) and the env file (0600) in place, keeps
// an existing env file, and `make uninstall` removes exactly that again:
// an unedited env file goes, an edited one stays.
func TestMakeInstallUninstall(t *testing.T) {
	mk := requireTool(t, "make", "apt-get install make")
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Stand-in binaries: this checks where make puts files, not the build
	// (-o build: the install target's build prerequisite is not run).
	bin := t.TempDir()
	for _, n := range []string{"vxlan6", "vxlan6d", EtcdProgram} {
		if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dest := t.TempDir()
	mkRun := func(target string) string {
		t.Helper()
		cmd := exec.Command(mk, "-s", "-o", "build", target, "DESTDIR="+dest, "BIN="+bin)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	mkRun("install")
	want := map[string]os.FileMode{
		"/opt/cni/bin/vxlan6": 0o755, "/usr/local/sbin/vxlan6d": 0o755, "/usr/local/sbin/" + EtcdProgram: 0o755, "/etc/vxlan6/vxlan6d.env": 0o600,
		"/etc/systemd/system/vxlan6d.service": 0o644, "/etc/systemd/system/vxlan6-etcd.service": 0o644,
	}
	got := treeFiles(t, dest)
	if len(got) != len(want) {
		t.Errorf("installed %v, want %v", got, want)
	}
	for p, m := range want {
		if got[p] != m {
			t.Errorf("%s: mode %o (present: %v), want %o", p, got[p], got[p] != 0, m)
		}
	}
	for _, u := range []string{"vxlan6d.service", "vxlan6-etcd.service"} {
		b, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system", u))
		if !strings.Contains(string(b), "ExecStart=/usr/local/sbin/vxlan6d ") || strings.Contains(string(b), "/usr/sbin/vxlan6d") {
			t.Errorf("installed %s does not run /usr/local/sbin/vxlan6d", u)
		}
	}

	env := filepath.Join(dest, "etc/vxlan6/vxlan6d.env")
	if err := os.WriteFile(env, []byte("VXLAN6D_ETCD_ENDPOINTS=http://[2001:db8::1]:2379\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mkRun("install"); !strings.Contains(out, "kept the existing") {
		t.Errorf("second install did not say it kept the edited env file: %q", out)
	}
	if b, _ := os.ReadFile(env); !strings.Contains(string(b), "2001:db8::1") {
		t.Error("install overwrote an edited env file")
	}
	if out := mkRun("uninstall"); !strings.Contains(out, "kept") {
		t.Errorf("uninstall did not say it kept the edited env file: %q", out)
	}
	if got := treeFiles(t, dest); len(got) != 1 || got["/etc/vxlan6/vxlan6d.env"] == 0 {
		t.Errorf("after uninstall with an edited env file: %v, want only that file", got)
	}
	if err := os.Remove(env); err != nil {
		t.Fatal(err)
	}
	mkRun("install")
	mkRun("uninstall")
	if got := treeFiles(t, dest); len(got) != 0 {
		t.Errorf("install + uninstall left %v", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/vxlan6")); !os.IsNotExist(err) {
		t.Errorf("uninstall left /etc/vxlan6 (%v)", err)
	}
}

// treeFiles maps every non-directory under root (as an absolute path
// inside it) to its permission bits.
func treeFiles(t *testing.T, root string) map[string]os.FileMode {
	t.Helper()
	m := map[string]os.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m["/"+strings.TrimPrefix(p, root+"/")] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("files under DESTDIR: %v", keys)
	return m
}
