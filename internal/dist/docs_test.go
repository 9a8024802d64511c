package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// docFiles are the Markdown files an operator reads.
func docFiles(t *testing.T) (string, []string) {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "conf.d", "README.md"))
	return root, files
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`^#+\s+(.*)$`)
)

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces as dashes.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a := map[string]bool{}
	inCode := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if m := mdHeading.FindStringSubmatch(l); m != nil && !inCode {
			a[slug(m[1])] = true
		}
	}
	return a
}

// TestDocsLinks: every relative link in the docs and READMEs points at a
// file of the repository, and every #anchor at a heading of that file.
func TestDocsLinks(t *testing.T) {
	_, files := docFiles(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			path := f
			if target != "" {
				path = filepath.Join(filepath.Dir(f), target)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", filepath.Base(f), link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !anchors(t, path)[anchor] {
				t.Errorf("%s: link %s: no heading with anchor #%s in %s", filepath.Base(f), link, anchor, filepath.Base(path))
			}
		}
	}
}

var (
	codeSpan  = regexp.MustCompile("`[^`]+`")
	vxlan6dCm = regexp.MustCompile(`(?:^|[\s/])vxlan6d ([a-z][a-z-]*)`)
)

// TestDocsCommandsExist: a `vxlan6d <command>` shown in the docs (code
// blocks and code spans) is a command of the built vxlan6d, or its line or
// section says "(coming)". When the CLI gains a command, its "(coming)"
// marks can go; when one is renamed, this test names the docs to fix.
func TestDocsCommandsExist(t *testing.T) {
	_, files := docFiles(t)
	help, _ := exec.Command(testutil.Binary(t, "vxlan6d"), "help").CombinedOutput()
	known := map[string]bool{}
	for _, m := range vxlan6dCm.FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	// cobra lists commands under "Available Commands:".
	if _, cmds, ok := strings.Cut(string(help), "Available Commands:\n"); ok {
		for _, l := range strings.Split(cmds, "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || !strings.HasPrefix(l, "  ") {
				break
			}
			known[f[0]] = true
		}
	}
	if !known["leases"] || !known["config"] {
		t.Fatalf("could not read the commands from 'vxlan6d help':\n%s", help)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inCode, sectionComing := false, false
		for i, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "```") {
				inCode = !inCode
				continue
			}
			if m := mdHeading.FindStringSubmatch(l); m != nil && !inCode {
				sectionComing = strings.Contains(m[1], "(coming)")
				continue
			}
			if sectionComing || strings.Contains(l, "coming") {
				continue
			}
			code := []string{l}
			if !inCode {
				code = codeSpan.FindAllString(l, -1)
			}
			for _, c := range code {
				for _, m := range vxlan6dCm.FindAllStringSubmatch(c, -1) {
					if !known[m[1]] {
						t.Errorf("%s:%d: 'vxlan6d %s' is no command of vxlan6d (mark it (coming) or fix it): %s",
							filepath.Base(f), i+1, m[1], strings.TrimSpace(l))
					}
				}
			}
		}
	}
}
