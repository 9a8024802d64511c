package dist

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// The release is built once per test process (two binaries, tarball, .deb)
// and shared by the tests below; it lives until TestMain ends.
var (
	relOnce sync.Once
	rel     *release
	relErr  error
	relDir  string
)

type release struct {
	root string // repository
	src  Source
	a    *Artifacts
	log  string
	pkg  string // the .deb extracted with dpkg-deb -x
	ctrl string // its control area (dpkg-deb -e)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if relDir != "" {
		os.RemoveAll(relDir)
	}
	os.Exit(code)
}

func getRelease(t *testing.T) *release {
	t.Helper()
	if testing.Short() {
		t.Skip("builds both binaries and the packages: skipped with -short")
	}
	requireTool(t, "git", "apt-get install git")
	requireTool(t, "dpkg-deb", "dpkg is essential on Debian")
	relOnce.Do(func() { rel, relErr = buildRelease() })
	if relErr != nil {
		t.Fatal(relErr)
	}
	return rel
}

func buildRelease() (*release, error) {
	root, err := testutil.ModuleRoot()
	if err != nil {
		return nil, err
	}
	src, err := Describe(root)
	if err != nil {
		return nil, err
	}
	if relDir, err = os.MkdirTemp("", "vxlan6-dist-test-"); err != nil {
		return nil, err
	}
	r := &release{root: root, src: src, pkg: filepath.Join(relDir, "root"), ctrl: filepath.Join(relDir, "control")}
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	r.a, err = Build(ctx, Options{Root: root, Out: filepath.Join(relDir, "dist"), Source: src, Log: &log})
	r.log = log.String()
	if err != nil {
		return nil, fmt.Errorf("build release: %w\n%s", err, r.log)
	}
	for _, args := range [][]string{{"-x", r.a.Deb, r.pkg}, {"-e", r.a.Deb, r.ctrl}} {
		if out, err := exec.Command("dpkg-deb", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return r, nil
}

// extras reports whether the CLI generated completion and man pages (it
// does once it has the commands; see CompletionArgs, ManArgs).
func (r *release) extras(t *testing.T) (completion, man bool) {
	completion = !strings.Contains(r.log, "bash completion left out")
	man = !strings.Contains(r.log, "man pages left out")
	// The cobra CLI has both commands: a release without them is broken.
	if !completion || !man {
		t.Errorf("make dist left out completion (%v) or man pages (%v):\n%s", !completion, !man, r.log)
	}
	return completion, man
}

// TestTarballAndSums: the tarball holds the binaries, conf.d, docs and
// LICENSE under one top directory, and SHA256SUMS matches both artifacts
// (also for `sha256sum -c`).
func TestTarballAndSums(t *testing.T) {
	r := getRelease(t)
	top := fmt.Sprintf("vxlan6_%s_linux_amd64/", r.src.Version)
	if filepath.Base(r.a.Tarball) != strings.TrimSuffix(top, "/")+".tar.gz" {
		t.Errorf("tarball named %s", filepath.Base(r.a.Tarball))
	}
	want := map[string]int64{"bin/vxlan6": 0o755, "bin/vxlan6d": 0o755, "bin/" + EtcdProgram: 0o755, "LICENSE": 0o644, "README.md": 0o644}
	for _, dir := range []string{"conf.d", "docs"} {
		ents, _ := os.ReadDir(filepath.Join(r.root, dir))
		for _, e := range ents {
			if e.Type().IsRegular() {
				want[dir+"/"+e.Name()] = 0o644
			}
		}
	}
	want["conf.d/vxlan6d.env"] = 0o600
	for _, f := range []string{"docs/install.md", "docs/runtimes.md", "docs/operations.md", "docs/troubleshooting.md", "docs/architecture.md", "conf.d/vxlan6d.service"} {
		if _, ok := want[f]; !ok {
			t.Errorf("%s missing from the repository", f)
		}
	}
	got := tarFiles(t, r.a.Tarball, top)
	completion, man := r.extras(t)
	for name, mode := range got {
		switch {
		case completion && name == "completion/vxlan6d.bash", man && strings.HasPrefix(name, "man/man"):
			continue
		}
		if wm, ok := want[name]; !ok {
			t.Errorf("tarball has unexpected %s", name)
		} else if mode != wm {
			t.Errorf("tarball %s mode %o, want %o", name, mode, wm)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("tarball lacks %s", name)
		}
	}

	sums := map[string]string{}
	b, err := os.ReadFile(r.a.Sums)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		h, name, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", l)
		}
		sums[name] = h
	}
	for _, f := range []string{r.a.Tarball, r.a.Deb} {
		if h := fileSHA(t, f); sums[filepath.Base(f)] != h {
			t.Errorf("SHA256SUMS says %q for %s, file hashes to %s", sums[filepath.Base(f)], filepath.Base(f), h)
		}
	}
	if len(sums) != 2 {
		t.Errorf("SHA256SUMS has %d entries, want the tarball and the .deb: %v", len(sums), sums)
	}
	if p, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(p, "-c", "SHA256SUMS")
		cmd.Dir = filepath.Dir(r.a.Sums)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
}

// tarFiles lists the regular files under top with their modes, checking
// that everything is under top and owned by root.
func tarFiles(t *testing.T, path, top string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Name, top) || h.Uname != "root" || h.Uid != 0 {
			t.Errorf("tarball entry %s (owner %s/%d): want it under %s, owned by root", h.Name, h.Uname, h.Uid, top)
		}
		if h.Typeflag == tar.TypeReg {
			files[strings.TrimPrefix(h.Name, top)] = h.Mode
		}
	}
	return files
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDebPackage: the .deb's control fields, file list, conffiles and
// maintainer scripts, and the packaged binaries run and report the version.
func TestDebPackage(t *testing.T) {
	r := getRelease(t)
	if want := fmt.Sprintf("vxlan6_%s_amd64.deb", r.src.Version); filepath.Base(r.a.Deb) != want {
		t.Errorf(".deb named %s, want %s", filepath.Base(r.a.Deb), want)
	}
	for field, want := range map[string]string{
		"Package": "vxlan6", "Version": r.src.Version, "Architecture": "amd64",
		"Depends": "containernetworking-plugins", "Section": "net",
	} {
		out, err := exec.Command("dpkg-deb", "-f", r.a.Deb, field).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("control field %s = %q (%v), want %q", field, got, err, want)
		}
	}
	checkDebFiles(t, r)
	conf, err := os.ReadFile(filepath.Join(r.ctrl, "conffiles"))
	if err != nil || string(conf) != EnvFile+"\n" {
		t.Errorf("conffiles = %q (%v), want only %s", conf, err, EnvFile)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(r.ctrl, s)
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("maintainer script %s: %v\n%s", s, err, out)
		}
	}

	// The packaged binaries run, and say the package's version.
	d := filepath.Join(r.pkg, DaemonPath)
	if out, err := exec.Command(d, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), r.src.Version) {
		t.Errorf("vxlan6d version: %q (%v), want it to name %s", out, err, r.src.Version)
	}
	if out, err := exec.Command(d, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), r.src.Version) {
		t.Errorf("vxlan6d --version: %q, want it to name %s", out, r.src.Version)
	}
	if out, err := exec.Command(filepath.Join(r.pkg, EtcdPath), "version").CombinedOutput(); err != nil || !strings.Contains(string(out), r.src.Version) {
		t.Errorf("%s version: %q (%v), want it to name %s", EtcdProgram, out, err, r.src.Version)
	}
	p := filepath.Join(r.pkg, PluginPath)
	cmd := exec.Command(p)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	out, err := cmd.Output()
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err != nil || json.Unmarshal(out, &v) != nil || !contains(v.SupportedVersions, "1.1.0") || !contains(v.SupportedVersions, "0.3.0") {
		t.Errorf("CNI_COMMAND=VERSION vxlan6: %s (%v), want supportedVersions 0.3.0 … 1.1.0", out, err)
	}
	// Without CNI_COMMAND the plugin prints its about line.
	cmd = exec.Command(p)
	cmd.Env = []string{}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "vxlan6 CNI plugin "+r.src.Version) {
		t.Errorf("vxlan6 (no CNI_COMMAND): %q (%v), want 'vxlan6 CNI plugin %s'", out, err, r.src.Version)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkDebFiles compares `dpkg-deb -c` with the expected paths and checks
// modes and the plugin link in the extracted tree.
func checkDebFiles(t *testing.T, r *release) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", r.a.Deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	listed := map[string]string{} // path -> mode string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		listed[strings.TrimPrefix(f[5], ".")] = f[0]
	}
	want := map[string]string{
		PluginPath: "-rwxr-xr-x", DaemonPath: "-rwxr-xr-x", EtcdPath: "-rwxr-xr-x", PluginLink: "lrwxrwxrwx",
		UnitDir + "/vxlan6d.service": "-rw-r--r--", UnitDir + "/vxlan6-etcd.service": "-rw-r--r--",
		EnvFile: "-rw-------", DocDir + "/copyright": "-rw-r--r--", DocDir + "/README.md": "-rw-r--r--",
	}
	for _, n := range []string{"10-vxlan6.conflist", "10-vxlan6-dualstack.conflist", "network.json", "network-dualstack.json", "vxlan6-etcd.env", "README.md"} {
		want[ExamplesDir+"/"+n] = "-rw-r--r--"
	}
	docs, _ := filepath.Glob(filepath.Join(r.root, "docs", "*.md"))
	for _, d := range docs {
		want[DocDir+"/docs/"+filepath.Base(d)] = "-rw-r--r--"
	}
	completion, man := r.extras(t)
	if completion {
		want[CompletionPath] = "-rw-r--r--"
	}
	var paths []string
	for p, mode := range listed {
		paths = append(paths, p)
		if man && strings.HasPrefix(p, ManDir+"/man8/") && strings.HasSuffix(p, ".8.gz") {
			continue
		}
		if w, ok := want[p]; !ok {
			t.Errorf(".deb has unexpected %s", p)
		} else if mode != w {
			t.Errorf(".deb %s mode %s, want %s", p, mode, w)
		}
	}
	for p := range want {
		if _, ok := listed[p]; !ok {
			t.Errorf(".deb lacks %s", p)
		}
	}
	if man && !contains(paths, ManDir+"/man8/vxlan6d.8.gz") {
		t.Errorf(".deb lacks %s/man8/vxlan6d.8.gz", ManDir)
	}
	sort.Strings(paths)
	t.Logf(".deb files:\n%s", strings.Join(paths, "\n"))
	if l, err := os.Readlink(filepath.Join(r.pkg, PluginLink)); err != nil || l != PluginPath {
		t.Errorf("%s -> %q (%v), want %s", PluginLink, l, err, PluginPath)
	}
	if completion {
		b, _ := os.ReadFile(filepath.Join(r.pkg, CompletionPath))
		if !strings.Contains(string(b), "vxlan6d") {
			t.Errorf("%s does not complete vxlan6d", CompletionPath)
		}
	}
}
