package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// requireTool fails under CI=true (CI installs every tool) and skips
// elsewhere when name is not on PATH.
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (%s); CI must have it", name, install)
	}
	t.Skipf("%s not installed (%s)", name, install)
	return ""
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDescribe: the version of a checkout without a tag, on a tag, after a
// tag and on a pre-release tag; each one dpkg accepts, in the order dpkg
// sorts them.
func TestDescribe(t *testing.T) {
	requireTool(t, "git", "apt-get install git")
	dpkg := requireTool(t, "dpkg", "dpkg is essential on Debian")
	dir := t.TempDir()
	env := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.org", "GIT_COMMITTER_DATE=2026-11-30T10:00:00Z", "GIT_AUTHOR_DATE=2026-11-30T10:00:00Z"}
	commit := func(msg string) {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, env, "git", "add", "f")
		run(t, dir, env, "git", "commit", "-q", "-m", msg)
	}
	describe := func() string {
		t.Helper()
		s, err := Describe(dir)
		if err != nil {
			t.Fatal(err)
		}
		run(t, dir, nil, dpkg, "--validate-version", s.Version)
		return s.Version
	}
	run(t, dir, env, "git", "init", "-q")
	commit("one")
	hash := run(t, dir, nil, "git", "rev-parse", "--short", "HEAD")

	var got []string
	snap := describe()
	if want := "0.0.0~git20261130." + hash; snap != want {
		t.Errorf("untagged: got %q, want %q", snap, want)
	}
	got = append(got, snap)
	run(t, dir, env, "git", "tag", "v1.2.0")
	if v := describe(); v != "1.2.0" {
		t.Errorf("on tag v1.2.0: got %q", v)
	}
	got = append(got, "1.2.0")
	commit("two")
	after := describe()
	if !regexp.MustCompile(`^1\.2\.0\+git20261130\.[0-9a-f]{7,}$`).MatchString(after) {
		t.Errorf("after v1.2.0: got %q, want 1.2.0+git20261130.<hash>", after)
	}
	got = append(got, after)
	run(t, dir, env, "git", "tag", "v1.3.0-rc.1")
	rc := describe()
	if rc != "1.3.0~rc.1" {
		t.Errorf("on tag v1.3.0-rc.1: got %q, want 1.3.0~rc.1", rc)
	}
	got = append(got, rc, "1.3.0")
	for i := 1; i < len(got); i++ {
		run(t, dir, nil, dpkg, "--compare-versions", got[i-1], "lt", got[i])
	}

	for _, bad := range []string{"", "v1.0", "1.0-1", "1.0 beta", "1:1.0"} {
		if ValidVersion(bad) == nil {
			t.Errorf("ValidVersion(%q) accepted it", bad)
		}
	}
}

func sleep(t *testing.T, ms int) {
	t.Helper()
	time.Sleep(time.Duration(ms) * time.Millisecond)
}
