package lease

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Nodes reads every <prefix>/nodes/<node> in one range request: the
// annotations by node name, and the records vxlan6d could not have written
// (a key whose name NodeAnnotations refuses, a value that is not the
// annotations JSON) apart, "key: reason", so one bad record hides no other.
func (r *Registry) Nodes(ctx context.Context) (nodes map[string]map[string]string, invalid []string, err error) {
	prefix := r.NodeKey("")
	resp, err := r.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	nodes = make(map[string]map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		name := strings.TrimPrefix(key, prefix)
		if err := ValidateNodeName(name); err != nil {
			invalid = append(invalid, fmt.Sprintf("%s: %v", clip(key), err))
			continue
		}
		ann, err := parseNode(key, kv.Value)
		if err != nil {
			invalid = append(invalid, fmt.Sprintf("%s: %v", clip(key), err))
			continue
		}
		nodes[name] = ann
	}
	return nodes, invalid, nil
}
