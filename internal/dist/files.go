package dist

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one file of the release: where it comes from, where the .deb
// installs it and where it sits in the tarball ("" = not there).
type Entry struct {
	Src     string      // file on the build host ("" for a symlink)
	Deb     string      // absolute path in the .deb
	Tar     string      // path under the tarball's top directory
	Mode    os.FileMode // permission bits
	Conf    bool        // a conffile in the .deb (kept over upgrades when edited)
	Symlink string      // target, for a symlink in the .deb
}

// EtcdProgram is the lab etcd's program (admin.EtcdProgram).
const EtcdProgram = "vxlan6d-etcd"

// Package paths. The plugin goes where every runtime looks by default
// (/opt/cni/bin); Debian's containernetworking-plugins, which provides the
// portmap plugin the shipped conflists chain, installs into /usr/lib/cni,
// so the plugin is linked there too: a runtime told to search only
// /usr/lib/cni finds both (docs/runtimes.md).
const (
	PluginPath = "/opt/cni/bin/vxlan6"
	PluginLink = "/usr/lib/cni/vxlan6"
	DaemonPath = "/usr/sbin/vxlan6d"
	// EtcdPath is the embedded etcd that `vxlan6d etcd` execs: beside the
	// daemon, where it looks first.
	EtcdPath       = "/usr/sbin/" + EtcdProgram
	UnitDir        = "/lib/systemd/system"
	EnvFile        = "/etc/vxlan6/vxlan6d.env"
	DocDir         = "/usr/share/doc/vxlan6"
	ExamplesDir    = DocDir + "/examples"
	CompletionPath = "/usr/share/bash-completion/completions/vxlan6d"
	ManDir         = "/usr/share/man"
)

// manifest lists every file of the release, in a stable order.
func manifest(root string, bins map[string]string, ex Extras) ([]Entry, error) {
	m := []Entry{
		{Src: bins["vxlan6"], Deb: PluginPath, Tar: "bin/vxlan6", Mode: 0o755},
		{Deb: PluginLink, Symlink: PluginPath},
		{Src: bins["vxlan6d"], Deb: DaemonPath, Tar: "bin/vxlan6d", Mode: 0o755},
		{Src: bins[EtcdProgram], Deb: EtcdPath, Tar: "bin/" + EtcdProgram, Mode: 0o755},
		{Src: filepath.Join(root, "LICENSE"), Deb: DocDir + "/copyright", Tar: "LICENSE", Mode: 0o644},
		{Src: filepath.Join(root, "README.md"), Deb: DocDir + "/README.md", Tar: "README.md", Mode: 0o644},
	}
	confd, err := confdEntries(root)
	if err != nil {
		return nil, err
	}
	m = append(m, confd...)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		return nil, fmt.Errorf("no docs/*.md in %s (%v)", root, err)
	}
	sort.Strings(docs)
	for _, d := range docs {
		n := filepath.Base(d)
		m = append(m, Entry{Src: d, Deb: DocDir + "/docs/" + n, Tar: "docs/" + n, Mode: 0o644})
	}
	if ex.Completion != "" {
		m = append(m, Entry{Src: ex.Completion, Deb: CompletionPath, Tar: "completion/vxlan6d.bash", Mode: 0o644})
	}
	for _, p := range ex.Man {
		n, sec := filepath.Base(p), manSection(p)
		m = append(m, Entry{Src: p + ".gz", Deb: ManDir + "/man" + sec + "/" + n + ".gz", Mode: 0o644},
			Entry{Src: p, Tar: "man/man" + sec + "/" + n, Mode: 0o644})
	}
	return m, nil
}

// confdEntries: the units go to systemd's directory, the env file to /etc
// as a conffile (0600: it may hold an etcd password), everything else of
// conf.d (conflists, network configs, the lab etcd's env file) is an
// example under /usr/share/doc. The tarball keeps conf.d as it is.
func confdEntries(root string) ([]Entry, error) {
	dir := filepath.Join(root, "conf.d")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var m []Entry
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		n := e.Name()
		en := Entry{Src: filepath.Join(dir, n), Tar: "conf.d/" + n, Mode: 0o644}
		switch {
		case strings.HasSuffix(n, ".service"):
			en.Deb = UnitDir + "/" + n
		case n == "vxlan6d.env":
			en.Deb, en.Conf, en.Mode = EnvFile, true, 0o600
		default:
			en.Deb = ExamplesDir + "/" + n
		}
		m = append(m, en)
	}
	return m, nil
}
