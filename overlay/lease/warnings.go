package lease

import "sync"

// warnOnce remembers which problems of which record revision were already
// logged, so that an invalid record is reported once per change, not on
// every List of the periodic resync.
type warnOnce struct {
	mu   sync.Mutex
	seen map[string]warned // by key
}

type warned struct {
	rev  int64
	msgs map[string]bool
}

// first reports whether msg about key at revision rev has not been logged
// yet, and marks it logged.
func (w *warnOnce) first(key string, rev int64, msg string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]warned{}
	}
	s, ok := w.seen[key]
	if !ok || s.rev != rev {
		s = warned{rev: rev, msgs: map[string]bool{}}
		w.seen[key] = s
	}
	if s.msgs[msg] {
		return false
	}
	s.msgs[msg] = true
	return true
}

// forget drops what was logged about a deleted key.
func (w *warnOnce) forget(key string) {
	w.mu.Lock()
	delete(w.seen, key)
	w.mu.Unlock()
}

// keep drops every key not among kvs (a full read): the memory stays as
// big as the set of records.
func (w *warnOnce) keep(kvs []keyValue) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return
	}
	present := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		present[kv.key] = true
	}
	for k := range w.seen {
		if !present[k] {
			delete(w.seen, k)
		}
	}
}

// clipMsg bounds a warning built from record fields.
func clipMsg(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
