package dist

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// writeTarball writes the entries with a Tar path under one top directory
// vxlan6_<version>_linux_<arch>/, owned by root, every mtime the commit's,
// so one commit gives the same bytes.
func writeTarball(dst string, src Source, m []Entry) error {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	top := fmt.Sprintf("vxlan6_%s_linux_%s", src.Version, Arch)
	var tarEntries []Entry
	dirs := map[string]bool{top: true}
	for _, e := range m {
		if e.Tar == "" {
			continue
		}
		tarEntries = append(tarEntries, e)
		for d := path.Dir(path.Join(top, e.Tar)); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Slice(tarEntries, func(i, j int) bool { return tarEntries[i].Tar < tarEntries[j].Tar })
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: src.Time, Uname: "root", Gname: "root"}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	for _, e := range tarEntries {
		if err := addTarFile(tw, path.Join(top, e.Tar), e, src); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return f.Close()
}

func addTarFile(tw *tar.Writer, name string, e Entry, src Source) error {
	f, err := os.Open(e.Src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: st.Size(), Mode: int64(e.Mode), ModTime: src.Time, Uname: "root", Gname: "root"}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// Package metadata of the .deb.
const (
	Maintainer  = "The vxlan6 Authors <noreply@vxlan6.invalid>"
	Homepage    = "https://github.com/vxlan6/vxlan6"
	Description = `IPv6-first multi-host container network (CNI plugin + overlay daemon)
vxlan6 connects containers on many hosts without Kubernetes: the CNI plugin
vxlan6 (for Podman's CNI backend, containerd/nerdctl, cnitool) gives each
container addresses from its node's subnet; the daemon vxlan6d leases that
subnet in etcd, keyed by the underlay IPv6 address the operator chose as
VTEP, and keeps one VXLAN-over-IPv6 peer entry per node in step with etcd.`
)

// writeDeb builds the .deb with nfpm's deb packager.
func writeDeb(dst, stage string, src Source, m []Entry) error {
	scripts, err := debScripts(stage)
	if err != nil {
		return err
	}
	info := &nfpm.Info{
		Name: "vxlan6", Arch: Arch, Platform: "linux",
		// "none": the version is already Debian's; nfpm's semver parsing
		// would reorder 0.0.0~git... into other fields.
		Version: src.Version, VersionSchema: "none",
		Section: "net", Priority: "optional",
		Maintainer: Maintainer, Homepage: Homepage, License: "Apache-2.0",
		Description: Description, MTime: src.Time,
		Overridables: nfpm.Overridables{
			// portmap (chained by the shipped conflists) and the other
			// reference plugins, in /usr/lib/cni.
			Depends:    []string{"containernetworking-plugins"},
			Recommends: []string{"iptables"},
			Suggests:   []string{"etcd-server", "etcd-client"},
			Contents:   debContents(m, src),
			Scripts:    scripts,
			Deb:        nfpm.Deb{Compression: "gzip"},
		},
	}
	info = nfpm.WithDefaults(info)
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	defer f.Close()
	if err := deb.Default.Package(info, f); err != nil {
		return fmt.Errorf("build %s with nfpm: %w", dst, err)
	}
	return f.Close()
}

func debContents(m []Entry, src Source) files.Contents {
	var c files.Contents
	for _, e := range m {
		switch {
		case e.Deb == "":
		case e.Symlink != "":
			c = append(c, &files.Content{Source: e.Symlink, Destination: e.Deb, Type: files.TypeSymlink,
				FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o777, MTime: src.Time}})
		default:
			typ := files.TypeFile
			if e.Conf {
				typ = files.TypeConfigNoReplace
			}
			c = append(c, &files.Content{Source: e.Src, Destination: e.Deb, Type: typ,
				FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: e.Mode, MTime: src.Time}})
		}
	}
	return c
}

// debScripts writes the embedded maintainer scripts for nfpm to read.
func debScripts(stage string) (nfpm.Scripts, error) {
	dir := filepath.Join(stage, "debian")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nfpm.Scripts{}, fmt.Errorf("maintainer scripts: %w", err)
	}
	for _, n := range []string{"postinst", "prerm", "postrm"} {
		b, err := maintScripts.ReadFile("debian/" + n)
		if err != nil {
			return nfpm.Scripts{}, fmt.Errorf("maintainer script %s: %w", n, err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			return nfpm.Scripts{}, fmt.Errorf("maintainer script %s: %w", n, err)
		}
	}
	return nfpm.Scripts{
		PostInstall: filepath.Join(dir, "postinst"),
		PreRemove:   filepath.Join(dir, "prerm"),
		PostRemove:  filepath.Join(dir, "postrm"),
	}, nil
}
