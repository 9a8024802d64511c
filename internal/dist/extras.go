package dist

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Extras are files the CLI generates about itself.
type Extras struct {
	Completion string   // bash completion script, "" if the CLI has none
	Man        []string // man pages (name.N), each also gzipped beside it as name.N.gz
}

// CompletionArgs and ManArgs are the commands of vxlan6d that generate the
// extras: `vxlan6d completion bash` prints the bash completion script;
// `vxlan6d man DIR` (a hidden command) writes one roff page per command
// into DIR, named like cobra's doc.GenManTree does (vxlan6d.8,
// vxlan6d-leases.8, ...).
var (
	CompletionArgs = []string{"completion", "bash"}
	ManArgs        = []string{"man"}
)

// generateExtras runs the built vxlan6d for its completion script and man
// pages. A CLI without those commands is not an error: the files are left
// out with a note, so `make dist` works before and after the CLI has them.
func generateExtras(ctx context.Context, vxlan6d, stage string, log io.Writer) Extras {
	var ex Extras
	if err := os.MkdirAll(stage, 0o755); err != nil {
		fmt.Fprintf(log, "note: bash completion and man pages left out: %v\n", err)
		return ex
	}
	out, err := runBounded(ctx, vxlan6d, CompletionArgs...)
	if err != nil || !bytes.Contains(out, []byte("vxlan6d")) {
		fmt.Fprintf(log, "note: bash completion left out: 'vxlan6d %s' failed or printed no script (%v)\n",
			strings.Join(CompletionArgs, " "), errOrEmpty(err))
	} else {
		ex.Completion = filepath.Join(stage, "vxlan6d.bash")
		if err := os.WriteFile(ex.Completion, out, 0o644); err != nil {
			fmt.Fprintf(log, "note: bash completion left out: %v\n", err)
			ex.Completion = ""
		}
	}
	man := filepath.Join(stage, "man")
	if err := os.MkdirAll(man, 0o755); err != nil {
		fmt.Fprintf(log, "note: man pages left out: %v\n", err)
		return ex
	}
	if _, err := runBounded(ctx, vxlan6d, append(ManArgs, man)...); err != nil {
		fmt.Fprintf(log, "note: man pages left out: 'vxlan6d %s DIR' failed (%v)\n", strings.Join(ManArgs, " "), err)
		return ex
	}
	pages, err := manPages(man)
	if err != nil || len(pages) == 0 {
		fmt.Fprintf(log, "note: man pages left out: 'vxlan6d %s DIR' wrote no NAME.N page (%v)\n", strings.Join(ManArgs, " "), errOrEmpty(err))
		return ex
	}
	ex.Man = pages
	return ex
}

func errOrEmpty(err error) any {
	if err == nil {
		return "empty output"
	}
	return err
}

// runBounded runs the binary with a timeout and returns its stdout.
func runBounded(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, extraTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// No settings from the build host's environment reach the CLI.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
	if err := cmd.Run(); err != nil {
		// The first line says why (e.g. unknown command); the rest is usage.
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return nil, fmt.Errorf("%w: %s", err, msg)
	}
	return stdout.Bytes(), nil
}

var manName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*\.[1-9]$`)

// manPages gzips every NAME.N page in dir (Debian ships man pages
// compressed) and returns the page paths, sorted.
func manPages(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var pages []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !manName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := gzipFile(p, p+".gz"); err != nil {
			return nil, err
		}
		pages = append(pages, p)
	}
	sort.Strings(pages)
	return pages, nil
}

func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	var buf bytes.Buffer
	// No name or time in the header: the same page gives the same bytes.
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("gzip %s: %w", src, err)
	}
	return nil
}

// manSection is the N of NAME.N.
func manSection(page string) string {
	return page[len(page)-1:]
}
