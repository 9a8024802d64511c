package admin

import (
	"strings"
	"testing"
)

// TestAnnotateRefusesBadNodeNames: a node name that cannot be one key
// under <prefix>/nodes/ (empty, '/', NUL) is a usage error named before
// etcd is asked (the endpoint here serves nothing).
func TestAnnotateRefusesBadNodeNames(t *testing.T) {
	for _, node := range []string{"", "a/b", "a\x00b"} {
		code, out, errOut, _ := testCLI(t, nil, "", "annotate", node, "k=v", "--etcd-endpoints", "http://[::1]:9")
		if code != ExitUsage || !strings.Contains(errOut, "node name") {
			t.Errorf("annotate %q: exit %d, want %d naming the node name:\n%s%s", node, code, ExitUsage, out, errOut)
		}
	}
}
