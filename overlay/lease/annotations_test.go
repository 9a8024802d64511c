package lease

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

func TestAnnotations(t *testing.T) {
	v := newEnv(t)
	ann, err := v.r.NodeAnnotations(v.ctx, "host-a")
	if err != nil || len(ann) != 0 {
		t.Fatalf("annotations of an unknown node: %v %v; want an empty map", ann, err)
	}
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	ch := v.r.WatchNode(ctx, "host-a")
	next := func(what string) map[string]string {
		t.Helper()
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("%s: WatchNode channel closed", what)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing from WatchNode within 10s", what)
		}
		return nil
	}
	if m := next("initial"); len(m) != 0 {
		t.Fatalf("initial value %v; want empty", m)
	}

	if err := v.r.Annotate(v.ctx, "host-a", AnnotationPublicIPv6Flannel, "2001:db8::2"); err != nil {
		t.Fatal(err)
	}
	if m := next("after set"); PublicIPv6Annotation(m) != "2001:db8::2" {
		t.Fatalf("after set: %v", m)
	}
	if err := v.r.Annotate(v.ctx, "host-a", AnnotationPublicIPv6, "2001:db8::3"); err != nil {
		t.Fatal(err)
	}
	if m := next("after second set"); PublicIPv6Annotation(m) != "2001:db8::3" || len(m) != 2 {
		t.Fatalf("after second set: %v; want both keys, vxlan6.io first", m)
	}
	if err := v.r.Annotate(v.ctx, "host-a", AnnotationPublicIPv6, ""); err != nil {
		t.Fatal(err)
	}
	if m := next("after remove"); PublicIPv6Annotation(m) != "2001:db8::2" || len(m) != 1 {
		t.Fatalf("after remove: %v", m)
	}
	// Setting the same value again changes nothing and sends nothing.
	if err := v.r.Annotate(v.ctx, "host-a", AnnotationPublicIPv6Flannel, "2001:db8::2"); err != nil {
		t.Fatal(err)
	}
	// Corrupt record: skipped by the watch, reported by NodeAnnotations.
	v.put(v.r.NodeKey("host-a"), "garbage")
	if _, err := v.r.NodeAnnotations(v.ctx, "host-a"); err == nil {
		t.Fatal("NodeAnnotations of a corrupt record succeeded")
	}
	if _, err := v.cli.Delete(v.ctx, v.r.NodeKey("host-a")); err != nil {
		t.Fatal(err)
	}
	if m := next("after delete"); len(m) != 0 {
		t.Fatalf("after delete: %v; want empty", m)
	}

	// Concurrent writers never lose each other's annotations.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.r.Annotate(v.ctx, "host-b", fmt.Sprintf("k%d", i), "v"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ann, err = v.r.NodeAnnotations(v.ctx, "host-b")
	if err != nil || len(ann) != 10 {
		t.Fatalf("after 10 concurrent annotations: %v %v", ann, err)
	}
	want := maps.Clone(ann)
	delete(want, "k3")
	if err := v.r.Annotate(v.ctx, "host-b", "k3", ""); err != nil {
		t.Fatal(err)
	}
	if ann, _ = v.r.NodeAnnotations(v.ctx, "host-b"); !maps.Equal(ann, want) {
		t.Fatalf("after removing k3: %v", ann)
	}

	for _, bad := range []string{"", "a/b"} {
		if err := v.r.Annotate(v.ctx, bad, "k", "v"); err == nil {
			t.Errorf("Annotate with node name %q succeeded", bad)
		}
	}
	cancel()
	for range ch {
	}
}

// TestAnnotateAllOneWrite: several sets and removals land in one write (one
// revision of the node key), so a watcher never sees half of them; changes
// that leave the annotations as they are write nothing.
func TestAnnotateAllOneWrite(t *testing.T) {
	v := newEnv(t)
	if err := v.r.AnnotateAll(v.ctx, "host-c", map[string]string{"a": "1", "b": "2", "c": "3"}); err != nil {
		t.Fatal(err)
	}
	if err := v.r.AnnotateAll(v.ctx, "host-c", map[string]string{"a": "", "b": "20", "d": "4"}); err != nil {
		t.Fatal(err)
	}
	resp, err := v.cli.Get(v.ctx, v.r.NodeKey("host-c"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Version != 2 {
		t.Fatalf("node key after two AnnotateAll: %v %v; want version 2", resp, err)
	}
	if err := v.r.AnnotateAll(v.ctx, "host-c", map[string]string{"a": "", "b": "20"}); err != nil {
		t.Fatal(err)
	}
	ann, err := v.r.NodeAnnotations(v.ctx, "host-c")
	if want := map[string]string{"b": "20", "c": "3", "d": "4"}; err != nil || !maps.Equal(ann, want) {
		t.Fatalf("annotations %v (%v), want %v", ann, err, want)
	}
	if resp, err = v.cli.Get(v.ctx, v.r.NodeKey("host-c")); err != nil || resp.Kvs[0].Version != 2 {
		t.Errorf("a no-op AnnotateAll wrote the node key (%v)", err)
	}
	if err := v.r.AnnotateAll(v.ctx, "host-c", map[string]string{"": "x"}); err == nil {
		t.Error("AnnotateAll with an empty key succeeded")
	}
}
