// Package dist builds vxlan6's release artifacts (`make dist`): a tarball
// vxlan6_<version>_linux_amd64.tar.gz, a .deb and SHA256SUMS.
//
// The .deb is built with nfpm used as a library (github.com/goreleaser/nfpm/v2)
// rather than the nfpm command or dpkg-deb: it needs no tool installed, no
// root and no fakeroot, writes the control file, md5sums and conffiles
// itself, and one Go manifest (files.go) drives both the tarball and the
// package, so the two cannot drift apart.
package dist

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// maintScripts are the .deb's maintainer scripts.
//
//go:embed debian
var maintScripts embed.FS

// Arch is the only target for now (the kernel features are tested on it).
const Arch = "amd64"

// Options say what to build and where.
type Options struct {
	Root   string    // repository root
	Out    string    // output directory (created; old artifacts replaced)
	Source Source    // version and commit (Describe)
	Log    io.Writer // progress and notes (files left out and why)
}

// Artifacts are the paths written.
type Artifacts struct {
	Tarball, Deb, Sums string
}

// Build compiles the binaries with the release version, collects the
// generated extras (completion, man pages) and writes the artifacts.
func Build(ctx context.Context, o Options) (*Artifacts, error) {
	if err := ValidVersion(o.Source.Version); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	stage, err := os.MkdirTemp("", "vxlan6-dist-")
	if err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	defer os.RemoveAll(stage)

	bins, err := buildBinaries(ctx, o, filepath.Join(stage, "bin"))
	if err != nil {
		return nil, err
	}
	ex := generateExtras(ctx, bins["vxlan6d"], stage, o.Log)
	m, err := manifest(o.Root, bins, ex)
	if err != nil {
		return nil, err
	}
	if err := cleanOut(o.Out); err != nil {
		return nil, err
	}
	a := &Artifacts{
		Tarball: filepath.Join(o.Out, fmt.Sprintf("vxlan6_%s_linux_%s.tar.gz", o.Source.Version, Arch)),
		Deb:     filepath.Join(o.Out, fmt.Sprintf("vxlan6_%s_%s.deb", o.Source.Version, Arch)),
		Sums:    filepath.Join(o.Out, "SHA256SUMS"),
	}
	if err := writeTarball(a.Tarball, o.Source, m); err != nil {
		return nil, err
	}
	if err := writeDeb(a.Deb, stage, o.Source, m); err != nil {
		return nil, err
	}
	if err := writeSums(a.Sums, a.Tarball, a.Deb); err != nil {
		return nil, err
	}
	for _, p := range []string{a.Tarball, a.Deb, a.Sums} {
		fmt.Fprintf(o.Log, "wrote %s\n", p)
	}
	return a, nil
}

// buildBinaries builds what `make build` builds, with the release version
// in main.version and for linux/amd64 whatever the build host is.
func buildBinaries(ctx context.Context, o Options, dir string) (map[string]string, error) {
	pkgs := map[string]string{"vxlan6": "./plugins/vxlan6", "vxlan6d": "./overlay/cmd/vxlan6d",
		EtcdProgram: "./overlay/cmd/vxlan6d-etcd"}
	out := map[string]string{}
	for _, name := range []string{"vxlan6", "vxlan6d", EtcdProgram} {
		p := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
			"-ldflags", "-s -w -X main.version="+o.Source.Version, "-o", p, pkgs[name])
		cmd.Dir = o.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+Arch)
		fmt.Fprintf(o.Log, "building %s %s\n", name, o.Source.Version)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", pkgs[name], err, b)
		}
		out[name] = p
	}
	return out, nil
}

// cleanOut creates dir and removes the artifacts of earlier runs, so that
// SHA256SUMS always describes everything in it.
func cleanOut(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "vxlan6_*"))
	for _, f := range append(old, filepath.Join(dir, "SHA256SUMS")) {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove old artifact %s: %w", f, err)
		}
	}
	return nil
}

// writeSums writes "<sha256>  <name>" lines, the format `sha256sum -c` reads.
func writeSums(path string, files ...string) error {
	var lines []string
	for _, f := range files {
		h, err := sha256File(f)
		if err != nil {
			return err
		}
		lines = append(lines, h+"  "+filepath.Base(f))
	}
	sort.Strings(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extraTimeout bounds each run of the built vxlan6d for generated files: a
// CLI that does not know the command must never end up running the daemon.
const extraTimeout = 30 * time.Second
