package e2e

// Every `vxlan6d ...` command line of the docs' shell blocks, run against a
// real testbed (issue 10: "each command shown in the docs is run by a test").

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed"
	"github.com/vxlan6/vxlan6/internal/testpki"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// docCmd is one `vxlan6d ...` line of a shell code block (continuation
// lines joined, the trailing comment dropped, blanks collapsed).
type docCmd struct {
	where string // file:line
	text  string
}

var shellFence = regexp.MustCompile("^```(sh|bash|shell|console)\\s*$")

// docCommands reads the vxlan6d command lines of the shell blocks of
// docs/*.md, README.md and conf.d/README.md.
func docCommands(t *testing.T, root string) []docCmd {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "conf.d", "README.md"))
	var cmds []docCmd
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		inShell, inCode := false, false
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if strings.HasPrefix(l, "```") {
				inShell, inCode = !inCode && shellFence.MatchString(l), !inCode
				continue
			}
			if !inShell {
				continue
			}
			start := i
			for strings.HasSuffix(strings.TrimSpace(stripComment(l)), `\`) && i+1 < len(lines) {
				l = strings.TrimSuffix(strings.TrimSpace(stripComment(l)), `\`) + " " + lines[i+1]
				i++
			}
			f := strings.Fields(stripComment(l))
			for len(f) > 0 && (f[0] == "sudo" || f[0] == "$") {
				f = f[1:]
			}
			if len(f) > 0 && f[0] == "vxlan6d" {
				cmds = append(cmds, docCmd{fmt.Sprintf("%s:%d", rel, start+1), strings.Join(f, " ")})
			}
		}
	}
	return cmds
}

// stripComment drops a shell comment (the docs quote no '#').
func stripComment(l string) string {
	if i := strings.Index(l, "#"); i >= 0 {
		return l[:i]
	}
	return l
}

// docsNotRun are the doc commands no test here can run, with the reason
// and the test that covers them instead. Empty today: keep it that way
// unless a command truly needs systemd or real hosts.
var docsNotRun = map[string]string{}

// docsPlaceholders maps the docs' example values to the bed's. Whole
// arguments are looked up in tokens first, then every substring in
// substrings is replaced (URLs inside a URL list, an address in KEY=VALUE).
type docsPlaceholders struct {
	tokens     map[string]string
	substrings map[string]string
}

func (p docsPlaceholders) apply(text string) []string {
	f := strings.Fields(text)[1:] // without "vxlan6d"
	keys := make([]string, 0, len(p.substrings))
	for k := range p.substrings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for i, a := range f {
		if v, ok := p.tokens[a]; ok {
			f[i] = v
			continue
		}
		for _, k := range keys {
			a = strings.ReplaceAll(a, k, p.substrings[k])
		}
		f[i] = a
	}
	return f
}

// docsEnvFile writes what /etc/vxlan6/vxlan6d.env holds on a real host:
// the etcd settings and, here, the paths of the bed (so nothing is written
// outside it). Every doc command reads it through VXLAN6D_ENV_FILE, as the
// docs' commands read the default env file.
func docsEnvFile(t *testing.T, h *testbed.Host) []string {
	t.Helper()
	path := filepath.Join(h.Dir, "vxlan6d.env")
	body := fmt.Sprintf("VXLAN6D_ETCD_ENDPOINTS=%s\nVXLAN6D_ETCD_PREFIX=%s\nVXLAN6D_NODE_NAME=%s\nVXLAN6D_SUBNET_FILE=%s\nVXLAN6D_LEASE_FILE=%s\n",
		strings.Join(h.Bed.Etcd.Endpoints, ","), h.Bed.Prefix, h.Name, h.SubnetFile, filepath.Join(h.Dir, "lease.json"))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"VXLAN6D_ENV_FILE=" + path}
}

// docsBackground starts a long-lived doc command (the daemon, the lab
// etcd) in h's netns; it is killed in Cleanup.
func docsBackground(t *testing.T, h *testbed.Host, env []string, args []string) (logPath string, exited func() bool) {
	t.Helper()
	logPath = filepath.Join(h.Dir, fmt.Sprintf("docs-%s.log", args[0]))
	p := testbed.StartProc(t, fmt.Sprintf("vxlan6d %v", args), h.Name, logPath, env, 8<<10, append([]string{testutil.Binary(t, "vxlan6d")}, args...)...)
	return logPath, p.Exited
}

// docsStep is one doc command as this test runs it.
type docsStep struct {
	cmd  string         // the command as the docs show it
	host int            // index of the host whose netns it runs in
	code int            // the exit code the docs promise
	bg   bool           // long-lived: started, then waited for wait if set
	wait string         // with bg: the log line that says it is up
	pre  func()         // what the docs do before (by hand, or with systemctl)
	post func(o string) // checks on stdout beyond the exit code
}

// TestDocsCommandsRun: every vxlan6d command line of the docs' shell blocks
// runs against a two-host bed (the example values mapped to the bed's) and
// exits as the docs say; a new doc command fails this test until it is
// added to the steps below (or, with a reason and its covering test, to
// docsNotRun).
func TestDocsCommandsRun(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := testbed.NewConfigured(t, testbed.Options{Hosts: 2}, false)
	h1, h2 := b.Hosts[0], b.Hosts[1]
	env := [][]string{docsEnvFile(t, h1), docsEnvFile(t, h2)}
	// Host 2 plays the docs' node-5 (VTEP 2001:db8:1::15), its daemon as
	// systemd would run it; host 1 runs the README's daemon command.
	h2.StartDaemon().WaitReady(readyTimeout)
	vtep2 := h2.VTEP(t)

	// The lab etcd of docs/etcd-tls.md, on host 2's uplink, with the bed's
	// certificates in place of /etc/vxlan6's.
	pki := filepath.Join(b.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, pki, "etcd-ca")
	srv := ca.Server(t, "etcd-server", []net.IP{h2.Addr1}, "etcd.sock")
	rootCert := ca.Client(t, "root")
	backup := filepath.Join(b.Dir, "network.json")
	conf := filepath.Join(root, "conf.d", "network.json")

	p := docsPlaceholders{
		tokens: map[string]string{
			"conf.d/network.json":                         conf,
			"/usr/share/doc/vxlan6/examples/network.json": conf,
			"network.json":                                backup,
			"node-5":                                      h2.Name,
			"/var/lib/vxlan6/etcd":                        filepath.Join(b.Dir, "lab-etcd"),
			"/etc/vxlan6/etcd-server.pem":                 srv.CertFile,
			"/etc/vxlan6/etcd-server-key.pem":             srv.KeyFile,
			"/etc/vxlan6/etcd-ca.pem":                     ca.CertFile,
			"etcd-ca.pem":                                 ca.CertFile,
			"etcd-root.pem":                               rootCert.CertFile,
			"etcd-root-key.pem":                           rootCert.KeyFile,
		},
		substrings: map[string]string{
			"http://[2001:db8:100::10]:2379":    strings.Join(b.Etcd.Endpoints, ","),
			"https://[2001:db8:100::10]:2379":   fmt.Sprintf("https://[%s]:2379", h2.Addr1),
			"unix:///run/vxlan6-etcd/etcd.sock": "unix://" + filepath.Join(pki, "etcd.sock"),
			"2001:db8:1::12":                    h1.Addr2.String(),
			"2001:db8:1::15":                    vtep2.String(),
		},
	}
	hasNodes := func(o string) {
		for _, h := range b.Hosts {
			if !strings.Contains(o, h.Name) {
				t.Errorf("output lacks node %s:\n%s", h.Name, o)
			}
		}
	}
	steps := []docsStep{
		{cmd: "vxlan6d version"},
		{cmd: "vxlan6d config put conf.d/network.json --etcd-endpoints http://[2001:db8:100::10]:2379"},
		{cmd: "vxlan6d config put /usr/share/doc/vxlan6/examples/network.json"},
		{cmd: "vxlan6d --etcd-endpoints http://[2001:db8:100::10]:2379 --public-ipv6 2001:db8:1::12", bg: true, wait: testbed.ReadyMsg,
			post: func(string) {
				if v := h1.VTEP(t); !v.Equal(h1.Addr2) {
					t.Errorf("the README's daemon chose VTEP %s, want %s (--public-ipv6)", v, h1.Addr2)
				}
			}},
		{cmd: "vxlan6d leases", post: hasNodes},
		{cmd: "vxlan6d nodes -o wide", post: hasNodes},
		{cmd: "vxlan6d status"},
		{cmd: "vxlan6d annotate node-5 vxlan6.io/public-ipv6=2001:db8:1::15"},
		{cmd: "vxlan6d annotate node-5 vxlan6.io/public-ipv6-"},
		// docs/operations.md: "systemctl disable --now vxlan6d" on the node first.
		{cmd: "vxlan6d lease delete --force 2001:db8:1::15", pre: func() { h2.Daemon().Stop() },
			post: func(string) {
				if l := b.LeaseFor(vtep2); l != nil {
					t.Errorf("lease of %s still in etcd after lease delete: %+v", vtep2, l)
				}
			}},
		{cmd: "vxlan6d lease reserve 2001:db8:1::15 fd10:244:0:15::/64 --node node-5",
			post: func(string) {
				if l := b.LeaseFor(vtep2); l == nil || !l.Reserved || l.NodeName != h2.Name || l.Subnets.V6.String() != "fd10:244:0:15::/64" {
					t.Errorf("lease reserve wrote %+v", l)
				}
			}},
		// docs/operations.md: etcdctl get .../config --print-value-only > network.json
		{cmd: "vxlan6d config put network.json", pre: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := b.Client().Get(ctx, b.Prefix+"/config")
			if err != nil || len(r.Kvs) != 1 {
				t.Fatalf("get %s/config: %v (%d keys)", b.Prefix, err, len(r.Kvs))
			}
			if err := os.WriteFile(backup, r.Kvs[0].Value, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{cmd: "vxlan6d etcd --data-dir /var/lib/vxlan6/etcd --listen-client-urls unix:///run/vxlan6-etcd/etcd.sock,https://[2001:db8:100::10]:2379 " +
			"--cert-file /etc/vxlan6/etcd-server.pem --key-file /etc/vxlan6/etcd-server-key.pem --trusted-ca-file /etc/vxlan6/etcd-ca.pem --client-cert-auth",
			host: 1, bg: true}, // served once the next step gets through (it retries)
		{cmd: "vxlan6d config put conf.d/network.json --etcd-endpoints https://[2001:db8:100::10]:2379 " +
			"--etcd-cafile etcd-ca.pem --etcd-certfile etcd-root.pem --etcd-keyfile etcd-root-key.pem", host: 1},
	}

	// The steps and docsNotRun cover the docs' commands exactly.
	docs := map[string][]string{}
	for _, c := range docCommands(t, root) {
		docs[c.text] = append(docs[c.text], c.where)
	}
	planned := map[string]bool{}
	for _, s := range steps {
		planned[s.cmd] = true
		if docs[s.cmd] == nil {
			t.Errorf("step %q is in no doc any more: drop it", s.cmd)
		}
	}
	for c, where := range docs {
		if !planned[c] && docsNotRun[c] == "" {
			t.Errorf("%s: %q is run by no test: add it to TestDocsCommandsRun's steps (or to docsNotRun with the test that covers it)", strings.Join(where, ", "), c)
		}
	}
	for c, why := range docsNotRun {
		if docs[c] == nil || !strings.Contains(why, "Test") {
			t.Errorf("docsNotRun %q: in no doc, or no covering test named in %q", c, why)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range steps {
		runDocsStep(t, b.Hosts[s.host], env[s.host], p.apply(s.cmd), s)
	}
}

// runDocsStep runs one step; one-shot commands are retried (bounded) while
// they exit otherwise than the docs say, as an operator would look again a
// moment later (peers appear, the lab etcd starts).
func runDocsStep(t *testing.T, h *testbed.Host, env, args []string, s docsStep) {
	t.Helper()
	if s.pre != nil {
		s.pre()
	}
	t.Logf("%s: vxlan6d %s", h.Name, strings.Join(args, " "))
	if s.bg {
		logPath, exited := docsBackground(t, h, env, args)
		if s.wait == "" {
			return
		}
		err := testbed.Eventually(readyTimeout, 100*time.Millisecond, func() error {
			log, _ := os.ReadFile(logPath)
			if strings.Contains(string(log), s.wait) || exited() {
				return nil
			}
			return fmt.Errorf("%q not logged", s.wait)
		})
		if log, _ := os.ReadFile(logPath); err != nil || !strings.Contains(string(log), s.wait) {
			t.Fatalf("%s: %v (exited: %v)\n%s", s.cmd, err, exited(), testbed.Tail(string(log), 4<<10))
		}
		if s.post != nil {
			s.post("")
		}
		return
	}
	var out, errOut string
	var code int
	err := testbed.Eventually(meshTimeout, 500*time.Millisecond, func() error {
		// A usage error (2) does not go away by waiting.
		if out, errOut, code = h.Run(20*time.Second, env, args...); code != s.code && code != 2 {
			return fmt.Errorf("exit %d", code)
		}
		return nil
	})
	if err != nil || code != s.code {
		t.Fatalf("%s: exit %d, want %d\n%s%s", s.cmd, code, s.code, out, errOut)
	}
	if s.post != nil {
		s.post(out)
	}
}
