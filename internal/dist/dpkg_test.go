package dist

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDpkgInstallRemovePurge installs the .deb with dpkg into a scratch
// root (maintainer scripts included: they see DPKG_ROOT and leave the
// running systemd alone), reinstalls it over an edited env file (kept),
// removes it (only the conffile stays) and purges it (nothing stays).
func TestDpkgInstallRemovePurge(t *testing.T) {
	r := getRelease(t)
	dpkg := requireTool(t, "dpkg", "dpkg is essential on Debian")
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// containernetworking-plugins is not in the scratch root's database.
	run := func(args ...string) string {
		t.Helper()
		base := []string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--force-not-root"}
		out, err := exec.Command(dpkg, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("-i", r.a.Deb)
	if out := run("-s", "vxlan6"); !strings.Contains(out, "Status: install ok installed") ||
		!strings.Contains(out, "Version: "+r.src.Version) || !strings.Contains(out, EnvFile) {
		t.Errorf("dpkg -s vxlan6 after install:\n%s", out)
	}
	installed := installedFiles(t, root)
	for _, p := range []string{PluginPath, PluginLink, DaemonPath, EtcdPath, UnitDir + "/vxlan6d.service", EnvFile} {
		if !installed[p] {
			t.Errorf("%s not installed", p)
		}
	}
	env := filepath.Join(root, EnvFile)
	b, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(b, []byte("VXLAN6D_NODE_NAME=edited-by-admin\n")...)
	if err := os.WriteFile(env, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	run("-i", r.a.Deb)
	if b, _ := os.ReadFile(env); string(b) != string(edited) {
		t.Error("reinstalling replaced the edited conffile")
	}
	run("-r", "vxlan6")
	if left := installedFiles(t, root); len(left) != 1 || !left[EnvFile] {
		t.Errorf("after dpkg -r: %v, want only %s", left, EnvFile)
	}
	run("-P", "vxlan6")
	if left := installedFiles(t, root); len(left) != 0 {
		t.Errorf("after dpkg -P: %v, want nothing", left)
	}
}

// installedFiles lists files and links under root outside dpkg's database.
func installedFiles(t *testing.T, root string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(p, root+"/")
		if strings.HasPrefix(rel, "/var/lib/dpkg") {
			return fs.SkipDir
		}
		if !d.IsDir() {
			m[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
