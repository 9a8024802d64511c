package lease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxlan6/vxlan6/internal/backoff"
)

// Snapshot is every valid lease at one revision. Invalid records (bad JSON,
// subnet outside the network, sharing a subnet or MAC with an earlier lease)
// are skipped with a slog warning; they are counted in Skipped.
type Snapshot struct {
	Leases   []Lease
	Revision int64
	Skipped  int
	// ix is the overlap index List built; WatchSnapshot takes it over so
	// the watch need not read and parse every record again.
	ix *index
}

// EventType says what happened to a lease.
type EventType int

const (
	Added   EventType = iota // created or changed
	Removed                  // deleted or expired
	Resync                   // the watch was reset (compaction, reconnect): the receiver must List again and reconcile fully
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Resync:
		return "resync"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change.
type Event struct {
	Type  EventType
	Lease Lease // for Removed only VTEP is guaranteed
}

// listPage bounds one range response, so that a very large network does not
// hit gRPC's message size limit.
const listPage = 5000

// getLeases reads every record under <prefix>/leases/ at rev (0 = now),
// page by page at one revision.
func (r *Registry) getLeases(ctx context.Context, rev int64) ([]keyValue, int64, error) {
	pfx := r.LeasesPrefix()
	end := clientv3.GetPrefixRangeEnd(pfx)
	from := pfx
	var out []keyValue
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := r.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("read leases under %s: %w", pfx, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, keyValue{key: string(kv.Key), value: kv.Value, createRev: kv.CreateRevision, modRev: kv.ModRevision, lease: kv.Lease})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// List reads every lease.
func (r *Registry) List(ctx context.Context, cfg *Config) (*Snapshot, error) {
	kvs, rev, err := r.getLeases(ctx, 0)
	if err != nil {
		return nil, err
	}
	ix := r.newIndex(cfg)
	ix.load(kvs)
	r.warns.keep(kvs)
	snap := &Snapshot{Revision: rev, Skipped: ix.invalid + ix.shadowed, ix: ix}
	snap.Leases = make([]Lease, 0, len(ix.recs))
	for _, kv := range kvs {
		if e := ix.recs[kv.key]; e != nil && e.active {
			snap.Leases = append(snap.Leases, e.lease)
		}
	}
	return snap, nil
}

// Watch streams lease events after revision rev until ctx ends. Invalid records
// are skipped with a warning. On compaction or a broken watch it sends Resync
// and stops; the caller Lists again and calls Watch from the new revision.
// The channel is closed when the watch stops. rev 0 means from now on.
//
// Conflicts between leases (a shared subnet or VtepMAC) are resolved as in
// List (the earlier created lease wins), so a record that starts or stops
// shadowing another produces Added and Removed events for both as needed.
func (r *Registry) Watch(ctx context.Context, cfg *Config, rev int64) <-chan Event {
	return r.startWatch(ctx, cfg, rev, nil)
}

// WatchSnapshot is Watch from snap's revision for a snapshot List returned:
// it takes over the records List already read and parsed instead of
// reading them all again (with 5000 leases, a range read and a parse of
// every record). A snapshot is taken over once; watching it again, or a
// Snapshot not made by List, reads the records at snap.Revision as Watch does.
func (r *Registry) WatchSnapshot(ctx context.Context, cfg *Config, snap *Snapshot) <-chan Event {
	ix := snap.ix
	snap.ix = nil
	if ix != nil && ix.cfg != cfg {
		ix = nil // another config: its validation would differ
	}
	return r.startWatch(ctx, cfg, snap.Revision, ix)
}

func (r *Registry) startWatch(ctx context.Context, cfg *Config, rev int64, ix *index) <-chan Event {
	ch := make(chan Event, 256)
	go func() {
		defer close(ch)
		r.watch(ctx, cfg, rev, ix, ch)
	}()
	return ch
}

func (r *Registry) watch(ctx context.Context, cfg *Config, rev int64, ix *index, ch chan<- Event) {
	send := func(evs []Event) bool {
		for _, ev := range evs {
			select {
			case ch <- ev:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	resync := func(why string, args ...any) {
		r.log.Warn("lease watch reset, resync needed: "+why, args...)
		send([]Event{{Type: Resync}})
	}

	// Overlap resolution needs the state the caller saw at rev: List's
	// index when given, else read again at rev.
	if ix == nil {
		ix = r.loadAt(ctx, cfg, &rev, resync)
		if ix == nil {
			return
		}
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := r.cli.Watch(clientv3.WithRequireLeader(wctx), r.LeasesPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return
		case wr, ok = <-wch:
		}
		if !ok {
			if ctx.Err() == nil {
				resync("watch channel closed")
			}
			return
		}
		if wr.CompactRevision != 0 {
			resync("revision compacted", "compactRevision", wr.CompactRevision)
			return
		}
		if err := wr.Err(); err != nil {
			if ctx.Err() == nil {
				resync("watch failed", "err", err)
			}
			return
		}
		for _, ev := range wr.Events {
			var evs []Event
			key := string(ev.Kv.Key)
			if ev.Type == clientv3.EventTypeDelete {
				r.warns.forget(key)
				evs = ix.remove(key)
			} else {
				evs = ix.put(keyValue{key: key, value: ev.Kv.Value, createRev: ev.Kv.CreateRevision, modRev: ev.Kv.ModRevision, lease: ev.Kv.Lease})
			}
			if !send(evs) {
				return
			}
		}
	}
}

// loadAt reads every record at *rev (0: now, and *rev becomes that
// revision) into a new index, retrying while etcd is away. It returns nil
// when ctx ends or rev was compacted (after sending Resync).
func (r *Registry) loadAt(ctx context.Context, cfg *Config, rev *int64, resync func(string, ...any)) *index {
	ix := r.newIndex(cfg)
	// The caller's List already warned about these records.
	ix.quiet = true
	defer func() { ix.quiet = false }()
	err := backoff.Retry(ctx, backoff.New(100*time.Millisecond, 5*time.Second), func() error {
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		kvs, at, err := r.getLeases(opCtx, *rev)
		cancel()
		if err == nil {
			ix.load(kvs)
			*rev = at
			return nil
		}
		if ctx.Err() == nil && errors.Is(err, rpctypes.ErrCompacted) {
			return backoff.Permanent(err)
		}
		return err
	}, func(_ int, _ time.Duration, err error) {
		r.log.Warn("lease watch: cannot read leases, retrying", "revision", *rev, "err", err)
	})
	if err == nil {
		return ix
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		resync("revision compacted", "revision", *rev)
	}
	return nil
}

// index is the set of lease records of one watch and the lease arbiter: it
// resolves conflicts so that List and Watch agree and every consumer (the
// daemon, and through it the vxlan device) sees one answer. A valid record
// is active unless one of its subnets or its VtepMAC is held by an active
// record created earlier: "older" means the first holder, by CreateRevision,
// never ModRevision (a renewed or rewritten record keeps its seniority, and a
// newcomer cannot evict a working peer by writing later).
type index struct {
	r        *Registry
	cfg      *Config
	pfx      string
	recs     map[string]*entry // valid records, active or shadowed
	own6     map[string]string // IPv6 subnet -> key of the active holder
	own4     map[string]string
	ownMAC   map[string]string // VtepMAC -> key of the active holder
	invalid  int
	shadowed int
	quiet    bool // no warnings (re-reading what the caller's List already reported)
}

type entry struct {
	lease     Lease
	createRev int64
	active    bool
}

func (r *Registry) newIndex(cfg *Config) *index {
	return &index{r: r, cfg: cfg, pfx: r.LeasesPrefix(), recs: map[string]*entry{},
		own6: map[string]string{}, own4: map[string]string{}, ownMAC: map[string]string{}}
}

func (ix *index) warn(key string, rev int64, msg string) {
	if !ix.quiet && ix.r.warns.first(key, rev, msg) {
		ix.r.log.Warn("skipping lease record: "+clipMsg(msg), "key", clip(key), "revision", rev)
	}
}

func (ix *index) parse(kv keyValue) (Lease, bool) {
	l, err := parseLease(ix.cfg, ix.pfx, kv, func(s string) {
		if !ix.quiet && ix.r.warns.first(kv.key, kv.modRev, s) {
			ix.r.log.Warn("lease record: "+clipMsg(s), "key", clip(kv.key), "revision", kv.modRev)
		}
	})
	if err != nil {
		ix.warn(kv.key, kv.modRev, err.Error())
		return Lease{}, false
	}
	return l, true
}

// load fills the index from a full read; no events.
func (ix *index) load(kvs []keyValue) {
	for _, kv := range kvs {
		l, ok := ix.parse(kv)
		if !ok {
			ix.invalid++
			continue
		}
		ix.recs[kv.key] = &entry{lease: l, createRev: kv.createRev}
	}
	// Overlaps are rare: claim in any order and only sort by creation when
	// one shows up.
	for k, e := range ix.recs {
		if ix.conflict(k, &e.lease) != "" {
			ix.resolve("")
			return
		}
		ix.claim(k, e)
	}
}

func subnetKey(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func (ix *index) conflict(key string, l *Lease) string {
	if k, ok := ix.own6[subnetKey(l.Subnets.V6)]; ok && k != key {
		return k
	}
	if l.Subnets.V4 != nil {
		if k, ok := ix.own4[subnetKey(l.Subnets.V4)]; ok && k != key {
			return k
		}
	}
	// Two peers with one MAC would make the kernel's fdb send one node's
	// traffic to the other: the MAC is held like a subnet.
	if k, ok := ix.ownMAC[l.VtepMAC.String()]; ok && k != key {
		return k
	}
	return ""
}

func (ix *index) claim(key string, e *entry) {
	e.active = true
	ix.own6[subnetKey(e.lease.Subnets.V6)] = key
	if e.lease.Subnets.V4 != nil {
		ix.own4[subnetKey(e.lease.Subnets.V4)] = key
	}
	ix.ownMAC[e.lease.VtepMAC.String()] = key
}

func (ix *index) release(key string, e *entry) {
	if !e.active {
		return
	}
	e.active = false
	if ix.own6[subnetKey(e.lease.Subnets.V6)] == key {
		delete(ix.own6, subnetKey(e.lease.Subnets.V6))
	}
	if e.lease.Subnets.V4 != nil && ix.own4[subnetKey(e.lease.Subnets.V4)] == key {
		delete(ix.own4, subnetKey(e.lease.Subnets.V4))
	}
	if ix.ownMAC[e.lease.VtepMAC.String()] == key {
		delete(ix.ownMAC, e.lease.VtepMAC.String())
	}
}

// resolve recomputes which records are active (earlier CreateRevision wins)
// and returns the events that turn the previous active set into the new one;
// changed is a key whose content changed and must be re-announced.
func (ix *index) resolve(changed string) []Event {
	prev := make(map[string]bool, len(ix.recs))
	keys := make([]string, 0, len(ix.recs))
	for k, e := range ix.recs {
		if e.active {
			prev[k] = true
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(ix.recs[a].createRev, ix.recs[b].createRev), strings.Compare(a, b))
	})
	clear(ix.own6)
	clear(ix.own4)
	clear(ix.ownMAC)
	ix.shadowed = 0
	var evs []Event
	for _, k := range keys {
		e := ix.recs[k]
		e.active = false
		if other := ix.conflict(k, &e.lease); other != "" {
			ix.shadowed++
			if prev[k] || k == changed || changed == "" {
				ix.warn(k, e.lease.ModRevision, fmt.Sprintf("its subnet or VtepMAC is held by the earlier lease %s", clip(other)))
			}
			if prev[k] {
				evs = append(evs, Event{Type: Removed, Lease: e.lease})
			}
			continue
		}
		ix.claim(k, e)
		if !prev[k] || k == changed {
			if changed != "" || prev[k] {
				evs = append(evs, Event{Type: Added, Lease: e.lease})
			}
		}
	}
	return evs
}

func (ix *index) vtepOfKey(key string) net.IP {
	return net.ParseIP(strings.TrimPrefix(key, ix.pfx))
}

// put applies a create or update of key.
func (ix *index) put(kv keyValue) []Event {
	l, ok := ix.parse(kv)
	old := ix.recs[kv.key]
	if !ok {
		if old == nil {
			return nil
		}
		// A record that turned invalid is gone for the data path.
		return ix.remove(kv.key)
	}
	e := &entry{lease: l, createRev: kv.createRev}
	if old != nil {
		e.createRev = old.createRev
	}
	if ix.shadowed == 0 && ix.conflict(kv.key, &l) == "" {
		// Fast path: no overlap anywhere, so nothing else changes state.
		if old != nil {
			ix.release(kv.key, old)
		}
		ix.recs[kv.key] = e
		ix.claim(kv.key, e)
		return []Event{{Type: Added, Lease: l}}
	}
	// Keep the old activity so resolve sees what the receiver holds.
	e.active = old != nil && old.active
	ix.recs[kv.key] = e
	return ix.resolve(kv.key)
}

// remove applies a delete of key.
func (ix *index) remove(key string) []Event {
	old := ix.recs[key]
	if old == nil {
		return nil
	}
	if ix.shadowed == 0 {
		ix.release(key, old)
		delete(ix.recs, key)
		return []Event{{Type: Removed, Lease: Lease{VTEP: ix.vtepOfKey(key), Subnets: old.lease.Subnets}}}
	}
	wasActive := old.active
	delete(ix.recs, key)
	evs := ix.resolve(key)
	if wasActive {
		evs = append([]Event{{Type: Removed, Lease: old.lease}}, evs...)
	}
	return evs
}
