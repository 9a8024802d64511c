package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// nodeRecord is the value of <prefix>/nodes/<node>.
type nodeRecord struct {
	Annotations map[string]string `json:"annotations"`
}

// ValidateNodeName refuses a node name that cannot be one key under
// <prefix>/nodes/: empty, or with '/' or NUL.
func ValidateNodeName(node string) error {
	if node == "" {
		return errors.New("empty node name")
	}
	if strings.ContainsAny(node, "/\x00") {
		return fmt.Errorf("node name %q contains '/' or NUL", node)
	}
	return nil
}

func parseNode(key string, value []byte) (map[string]string, error) {
	var rec nodeRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("node record %s is not {\"annotations\":{...}} JSON: %w", key, err)
	}
	if rec.Annotations == nil {
		rec.Annotations = map[string]string{}
	}
	return rec.Annotations, nil
}

// NodeAnnotations returns <prefix>/nodes/<node>'s annotations (empty map if none).
func (r *Registry) NodeAnnotations(ctx context.Context, node string) (map[string]string, error) {
	ann, _, _, err := r.nodeAnnotations(ctx, node)
	return ann, err
}

// nodeAnnotations also returns the key's ModRevision (0 if missing) and the
// revision read.
func (r *Registry) nodeAnnotations(ctx context.Context, node string) (map[string]string, int64, int64, error) {
	if err := ValidateNodeName(node); err != nil {
		return nil, 0, 0, err
	}
	key := r.NodeKey(node)
	resp, err := r.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return map[string]string{}, 0, resp.Header.Revision, nil
	}
	ann, err := parseNode(key, resp.Kvs[0].Value)
	return ann, resp.Kvs[0].ModRevision, resp.Header.Revision, err
}

// Annotate sets (value != "") or removes (value == "") one annotation.
func (r *Registry) Annotate(ctx context.Context, node, key, value string) error {
	return r.AnnotateAll(ctx, node, map[string]string{key: value})
}

// AnnotateAll sets (value != "") or removes (value == "") the annotations
// of changes in one write, so watchers see them all at once. It is a
// read-modify-write guarded by the key's ModRevision, retried when another
// writer got in between, so concurrent annotations never get lost.
func (r *Registry) AnnotateAll(ctx context.Context, node string, changes map[string]string) error {
	if _, ok := changes[""]; ok {
		return fmt.Errorf("annotate node %s: empty annotation key", node)
	}
	nodeKey := r.NodeKey(node)
	return retryRaces(ctx, func() error {
		return r.annotateOnce(ctx, node, changes)
	}, func(err error) error {
		if errors.Is(err, errLostRace) {
			return fmt.Errorf("annotate node %s: %s kept changing under us", node, nodeKey)
		}
		return fmt.Errorf("annotate node %s: %w", node, err)
	})
}

// annotateOnce is one read-modify-write of AnnotateAll; errLostRace when
// the record changed under it.
func (r *Registry) annotateOnce(ctx context.Context, node string, changes map[string]string) error {
	nodeKey := r.NodeKey(node)
	ann, modRev, _, err := r.nodeAnnotations(ctx, node)
	if err != nil {
		return fmt.Errorf("annotate node %s: %w", node, err)
	}
	was := maps.Clone(ann)
	for key, value := range changes {
		if value == "" {
			delete(ann, key)
		} else {
			ann[key] = value
		}
	}
	if maps.Equal(ann, was) {
		return nil
	}
	data, err := json.Marshal(nodeRecord{Annotations: ann})
	if err != nil {
		return err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(nodeKey), "=", modRev)
	resp, err := r.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(nodeKey, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("annotate node %s: write %s: %w", node, nodeKey, err)
	}
	if !resp.Succeeded {
		return errLostRace
	}
	return nil
}

// WatchNode sends the node's annotations each time they change, until ctx ends
// (the channel is then closed). The current value is sent first. A record that
// is not valid JSON is skipped with a warning; a deleted record is an empty map.
// A broken watch is re-established (with backoff) and the value re-read, so
// changes made meanwhile are not missed.
func (r *Registry) WatchNode(ctx context.Context, node string) <-chan map[string]string {
	ch := make(chan map[string]string, 1)
	go func() {
		defer close(ch)
		if err := ValidateNodeName(node); err != nil {
			r.log.Error("cannot watch node annotations", "err", err)
			<-ctx.Done()
			return
		}
		r.watchNode(ctx, node, changeSender(ctx, ch, maps.Equal, maps.Clone))
	}()
	return ch
}

// watchNode sends the node's annotations (an empty map when the record is
// absent or deleted) until ctx ends or send fails; an invalid record is
// skipped with a warning and watched until it is fixed.
func (r *Registry) watchNode(ctx context.Context, node string, send func(map[string]string) bool) {
	key := r.NodeKey(node)
	var lastLog time.Time
	r.watchKey(ctx, key, func(raw []byte) bool {
		ann := map[string]string{}
		if raw != nil {
			var err error
			if ann, err = parseNode(key, raw); err != nil {
				r.log.Warn("ignoring invalid node record", "key", key, "err", err)
				return true
			}
		}
		return send(ann)
	}, func(err error) {
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			r.log.Warn("cannot read node annotations, retrying", "key", key, "err", err)
		}
	})
}
