package dist

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExtrasFromCLI: with a CLI that has `completion bash` and `man DIR`
// the completion script and gzipped man pages go into the package at their
// Debian paths; with one that has neither, both are left out with a note.
func TestExtrasFromCLI(t *testing.T) {
	dir := t.TempDir()
	withCmds := filepath.Join(dir, "with")
	script := `#!/bin/sh
case "$1 $2" in
"completion bash") echo 'complete -F __start_vxlan6d vxlan6d'; exit 0;;
"man "*) printf '.TH VXLAN6D 8\n' > "$2/vxlan6d.8"; printf '.TH VXLAN6D-LEASES 8\n' > "$2/vxlan6d-leases.8"; : > "$2/notes.txt"; exit 0;;
esac
echo "unknown command \"$1\"" >&2; exit 2
`
	without := filepath.Join(dir, "without")
	for p, s := range map[string]string{withCmds: script, without: "#!/bin/sh\necho 'vxlan6d: unknown command' >&2\nexit 2\n"} {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var log strings.Builder
	stage := filepath.Join(dir, "stage")
	ex := generateExtras(context.Background(), withCmds, stage, &log)
	if ex.Completion == "" || len(ex.Man) != 2 || log.Len() != 0 {
		t.Fatalf("with the commands: %+v, log %q", ex, log.String())
	}
	root := t.TempDir()
	for _, d := range []string{"conf.d", "docs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "docs", "install.md"), []byte("#"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest(root, map[string]string{"vxlan6": "p", "vxlan6d": "d", EtcdProgram: "e"}, ex)
	if err != nil {
		t.Fatal(err)
	}
	deb := map[string]string{}
	for _, e := range m {
		if e.Deb != "" {
			deb[e.Deb] = e.Src
		}
	}
	for _, p := range []string{CompletionPath, ManDir + "/man8/vxlan6d.8.gz", ManDir + "/man8/vxlan6d-leases.8.gz"} {
		src, ok := deb[p]
		if !ok {
			t.Errorf("manifest lacks %s", p)
			continue
		}
		if _, err := os.Stat(src); err != nil {
			t.Errorf("%s: source %v", p, err)
		}
	}

	log.Reset()
	ex = generateExtras(context.Background(), without, filepath.Join(dir, "stage2"), &log)
	if ex.Completion != "" || len(ex.Man) != 0 {
		t.Errorf("without the commands: %+v", ex)
	}
	for _, want := range []string{"bash completion left out: 'vxlan6d completion bash'", "man pages left out: 'vxlan6d man DIR'", "unknown command"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("notes %q lack %q", log.String(), want)
		}
	}
}
