package dist

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Source describes the commit a release is cut from.
type Source struct {
	Version string    // Debian-valid package version, also the binaries' main.version
	Commit  string    // short hash
	Time    time.Time // commit time: every file's mtime, for reproducible archives
}

// debVersion is what dpkg accepts as a version without epoch or revision:
// starts with a digit; letters, digits, '.', '+', '~' (no '-': that would
// start a Debian revision).
var debVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// ValidVersion reports whether v is a Debian upstream version (no epoch, no
// revision).
func ValidVersion(v string) error {
	if !debVersion.MatchString(v) {
		return fmt.Errorf("version %q is not a valid Debian version (digit first, then [A-Za-z0-9.+~])", v)
	}
	return nil
}

// Describe derives the release version of the checkout in dir:
//   - HEAD is tagged vX.Y.Z[-pre]: X.Y.Z[~pre] (a semver pre-release sorts
//     before the release in dpkg only with '~');
//   - commits after the latest tag: <tag version>+git<YYYYMMDD>.<hash>;
//   - no tag yet: 0.0.0~git<YYYYMMDD>.<hash>, which sorts before any
//     tagged release.
//
// The date is the commit's (UTC), so one commit always gives one version.
func Describe(dir string) (Source, error) {
	var s Source
	out, err := git(dir, "show", "-s", "--format=%h %ct", "HEAD")
	if err != nil {
		return s, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return s, fmt.Errorf("git show HEAD in %s: unexpected output %q", dir, out)
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return s, fmt.Errorf("git show HEAD in %s: commit time %q: %w", dir, f[1], err)
	}
	s.Commit, s.Time = f[0], time.Unix(sec, 0).UTC()
	snapshot := "git" + s.Time.Format("20060102") + "." + s.Commit

	tag, err := git(dir, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", "HEAD")
	if err != nil {
		// No tag (describe fails): a snapshot before the first release.
		s.Version = "0.0.0~" + snapshot
		return s, ValidVersion(s.Version)
	}
	v := tagVersion(tag)
	if err := ValidVersion(v); err != nil {
		return s, fmt.Errorf("latest tag %s: %w", tag, err)
	}
	if _, err := git(dir, "describe", "--tags", "--exact-match", "--match", tag, "HEAD"); err == nil {
		s.Version = v
	} else {
		s.Version = v + "+" + snapshot
	}
	return s, ValidVersion(s.Version)
}

// tagVersion turns v1.2.3-rc.1 into 1.2.3~rc.1.
func tagVersion(tag string) string {
	v := strings.TrimPrefix(tag, "v")
	return strings.Replace(v, "-", "~", 1)
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
