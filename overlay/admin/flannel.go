package admin

import (
	"fmt"
	"strings"

	"github.com/vxlan6/vxlan6/overlay/lease"
)

// normalizeConfig checks a network config before 'config put' writes it:
// vxlan6's or flannel's shape (lease.ParseFlannelConfig), and a key nobody
// knows is an error here (the daemon only warns), so a typo never reaches
// etcd silently. The config is stored as given; the notes say which
// flannel defaults apply.
func normalizeConfig(data []byte) ([]byte, []string, error) {
	pc, err := lease.ParseFlannelConfig(data)
	if err != nil {
		return nil, nil, err
	}
	if len(pc.Unknown) > 0 {
		return nil, nil, fmt.Errorf("unknown key(s) %s (see docs/flannel.md for the keys vxlan6 honours)", strings.Join(pc.Unknown, ", "))
	}
	return data, pc.Notes, nil
}
