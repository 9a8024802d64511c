package ipam

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Durability decision (fsync).
//
// Measured on this machine's ext4 disk: an fsync costs 0.4-1 ms, while a
// whole Allocate without it costs ~50 µs. What each failure needs:
//
//   - A crashed or killed process (the common case: timeouts, OOM) loses
//     nothing that it wrote: the page cache survives. Safety there comes from
//     atomic symlink/rename and the ordering rule in the package comment,
//     not from fsync.
//   - Power loss or a kernel crash kills every container on the node too, so
//     a lost reservation can never make two live containers share an
//     address. What matters is that the state after reboot is readable, and
//     that an allocation the runtime was told about is remembered, so a
//     runtime that re-runs ADD for the same container after the reboot gets
//     the same address and DEL/GC can free what was given.
//
// At any instant the on-disk state is safe after a process crash, and after
// power loss on filesystems that commit metadata in order (ext4, xfs: what
// /var/lib is on nodes), because of the step order alone. fsync is only
// about making a finished call durable. Each call that changed something
// makes exactly one fsync before it returns (after dropping the lock, so
// that parallel plugins share journal commits), of the directory whose
// durability keeps "every reservation is listed in its owner's record" true
// even where a filesystem does not order its metadata:
//
//   - Allocate fsyncs pairs/: the grown record is durable, so whatever of
//     the reservations survives is listed. (A reservation that did not
//     survive is harmless: its container died with the node, and a repeated
//     ADD takes the listed address back.)
//   - Release fsyncs ips/: the removals are durable, so no reservation can
//     outlive the call. (A record that survives with nothing held is
//     harmless: Get and List skip it, Release removes it.)
//
// On ext4 and xfs, which commit metadata in order, that one fsync also makes
// every earlier step of the call durable, so an allocation the runtime was
// told about survives a power cut. Measured here: one directory fsync costs
// 0.25-0.9 ms idle (a second one, for the other directory, costs as much
// again, which is why there is only one), versus ~50 µs for everything else
// in an Allocate. File data is never fsynced before rename: a record torn by
// power loss fails to parse and is rebuilt from the reservation symlinks,
// whose owner lives atomically in the inode. Reads and idempotent repeats
// write nothing and never fsync. Options.NoSync drops the fsync, for state on
// tmpfs or for tests.

// crashHook, when set by a test, is called at each step of a mutation where
// a crash leaves a distinct on-disk state; the crash tests exit there.
var crashHook func(point string)

func at(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}

// Options tunes a Store.
type Options struct {
	// NoSync skips the fsync at the end of mutating operations. Safe against
	// process crashes, not against power loss.
	NoSync bool
	// BootID is the kernel's boot ID (ReadBootID). When set, records carry
	// it and the allocations of an earlier boot are released at the first
	// operation of a new one (boot.go). Empty: no boot tracking. Tests
	// simulate a reboot by passing another value.
	BootID string
	// Reclaimer, when set, lets Allocate take back this boot's leftovers
	// as a last resort (reclaim.go).
	Reclaimer Reclaimer
}

// Store is the crash-safe allocation store under a data dir. Every method
// takes a cross-process file lock for its duration, so concurrent plugin
// processes on one node never hand out one address twice.
type Store struct {
	dir string

	// mu serialises goroutines of this Store: they share one flock.
	mu      sync.Mutex
	lk      *fileLock
	ips     string
	pairs   string
	cursors string
	tmp     string
	opts    Options
	tmpSeq  int
	swept   bool

	prevBoot string // boot ID of the previous generation, if any
}

const (
	probeAllocate = 64 // candidates tried from the cursor before counting allocations
	probeFree     = 16
	maxRecordName = 200 // well below NAME_MAX (255)
)

// Open opens (creating if needed) the store under dataDir.
func Open(dataDir string) (*Store, error) { return OpenWithOptions(dataDir, Options{}) }

// OpenWithOptions is Open with tuning options.
func OpenWithOptions(dataDir string, opts Options) (*Store, error) {
	if dataDir == "" {
		return nil, errors.New("ipam: empty data dir")
	}
	s := &Store{
		dir:     dataDir,
		ips:     filepath.Join(dataDir, "ips"),
		pairs:   filepath.Join(dataDir, "pairs"),
		cursors: filepath.Join(dataDir, "cursors"),
		tmp:     filepath.Join(dataDir, "tmp"),
		opts:    opts,
	}
	// tmp/ is made last, so if it exists the layout is complete: one stat
	// instead of four on every plugin exec.
	if _, err := os.Stat(s.tmp); err != nil {
		for _, d := range []string{s.ips, s.pairs, s.cursors, s.tmp} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("ipam: create state dir %s: %w", d, err)
			}
		}
	}
	lk, err := openLock(filepath.Join(dataDir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	s.lk = lk
	return s, nil
}

// sweepTmp deletes temp files of crashed operations, once per Store, inside
// its first locked operation (so Open itself costs no lock round trip).
// Writers make temp files only while holding the lock, so whatever is there
// once we hold it is garbage. It is harmless anyway (never read), this only
// reclaims the space.
func (s *Store) sweepTmp() {
	names, err := readDirNames(s.tmp)
	if err != nil {
		slog.Warn("ipam: cannot list temp dir", "err", err)
		return
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(s.tmp, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			slog.Warn("ipam: cannot remove leftover temp file", "file", filepath.Join(s.tmp, n), "err", err)
		}
	}
}

// Close releases resources held by the store (not the allocations).
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lk == nil {
		return nil
	}
	err := s.lk.Close()
	s.lk = nil
	return err
}

func (s *Store) acquire() (func(), error) {
	s.mu.Lock()
	if s.lk == nil {
		s.mu.Unlock()
		return nil, errors.New("ipam: store is closed")
	}
	if err := s.lk.Lock(); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("ipam: lock %s: %w", s.dir, err)
	}
	if !s.swept {
		s.swept = true
		s.sweepTmp()
		if s.opts.BootID != "" {
			if err := s.checkBoot(); err != nil {
				s.swept = false
				_ = s.lk.Unlock()
				s.mu.Unlock()
				return nil, err
			}
			s.pruneTrash()
		}
	}
	return func() {
		_ = s.lk.Unlock()
		s.mu.Unlock()
	}, nil
}

// locked runs fn holding the store's lock.
func (s *Store) locked(fn func() error) error {
	unlock, err := s.acquire()
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// Allocate returns one address per subnet for (id, ifname). A repeated call for
// the same pair returns the same addresses (IPs still inside the subnets).
// requested may be nil or hold addresses to pin (matched to the subnet that
// contains them; an address in no subnet is ErrOutsideSubnet, one held by
// another pair ErrInUse). The network address, the gateway (first host
// address) and, for IPv4, the broadcast address are never handed out.
// On any error nothing stays allocated for the pair by this call.
//
// Addresses the pair holds outside the given subnets (the node subnet has
// changed) are released and replaced by fresh ones from the given subnets.
func (s *Store) Allocate(id, ifname string, subnets []*net.IPNet, requested []net.IP) ([]net.IP, error) {
	return s.AllocateFor(id, ifname, Owner{}, subnets, requested)
}

// AllocateFor is Allocate for a container whose netns and host veth are
// recorded with the allocation (see Owner), which makes it a candidate for
// last-resort reclaim once they are gone. A pair without a record gets its
// remembered addresses back when they are free (memory.go). A pool that is
// exhausted, or a requested address that is held, is served from a
// leftover of this boot when the store has a Reclaimer that finds one gone.
func (s *Store) AllocateFor(id, ifname string, owner Owner, subnets []*net.IPNet, requested []net.IP) ([]net.IP, error) {
	if err := checkPair(id, ifname); err != nil {
		return nil, err
	}
	pools, err := poolsOf(subnets)
	if err != nil {
		return nil, err
	}
	want, err := matchRequested(pools, requested)
	if err != nil {
		return nil, err
	}
	var result, created []netip.Addr
	changed := false
	err = s.locked(func() error {
		meta := recordMeta{Boot: s.opts.BootID, Owner: owner}
		result, created, changed, err = s.allocateLocked(id, ifname, meta, pools, want)
		return err
	})
	if err != nil {
		return nil, err
	}
	if changed {
		// Durable before the runtime hears of it (see the fsync decision
		// above), but outside the lock, so that parallel plugins share one
		// journal commit instead of queueing one commit each.
		if err := s.sync(s.pairs); err != nil {
			err = fmt.Errorf("ipam: allocate for %s/%s: %w", id, ifname, err)
			if uerr := s.locked(func() error { return s.forget(id, ifname, created) }); uerr != nil {
				err = errors.Join(err, uerr)
			}
			return nil, err
		}
		at("allocate:synced")
	}
	return toNetIPs(result), nil
}

// allocateLocked does Allocate's work under the lock: decide (planAlloc),
// then write (applyAlloc). It reports the addresses it reserved and whether
// it changed anything on disk.
func (s *Store) allocateLocked(id, ifname string, meta recordMeta, pools []pool, want []netip.Addr) (result, create []netip.Addr, changed bool, err error) {
	p, err := s.planAlloc(id, ifname, meta, pools, want)
	if err != nil {
		return nil, nil, false, err
	}
	if len(p.create) == 0 && len(p.drop) == 0 && sameSet(p.listed, p.result) && p.meta == p.oldMeta {
		return p.result, nil, false, nil
	}
	if err := s.applyAlloc(p, pools); err != nil {
		return nil, nil, false, err
	}
	return p.result, p.create, true, nil
}

// allocPlan is what Allocate decided for a pair before anything changed on
// disk (only a last-resort reclaim may have released a leftover by then).
type allocPlan struct {
	id, ifname, tok string
	exists          bool         // the pair had a record
	listed          []netip.Addr // the record's addresses
	oldMeta, meta   recordMeta   // the record's metadata, and the one to write
	result          []netip.Addr // the pair's address in each pool
	create          []netip.Addr // those of result to reserve
	drop            []netip.Addr // held by the pair, in no pool now
	picked          []int        // pools whose address came from the cursor
}

// planAlloc chooses the pair's address in each pool: the requested one,
// else the one it holds there, else a fresh one.
func (s *Store) planAlloc(id, ifname string, meta recordMeta, pools []pool, want []netip.Addr) (*allocPlan, error) {
	p := &allocPlan{id: id, ifname: ifname, tok: token(id, ifname), meta: meta}
	var err error
	p.listed, p.oldMeta, p.exists, err = s.readRecordMeta(id, ifname, p.tok)
	if err != nil {
		return nil, err
	}
	if meta.NetnsIno == 0 && p.exists {
		// An Allocate without an owner keeps what is known of it.
		p.meta, p.meta.Boot = p.oldMeta, s.opts.BootID
	}
	var memory []netip.Addr
	if !p.exists {
		memory = s.remembered(id, ifname, p.tok)
	}
	owned := make(map[netip.Addr]bool, len(p.listed))
	for _, a := range p.listed {
		o, ok, err := s.owner(a)
		if err != nil {
			return nil, err
		}
		owned[a] = ok && o == p.tok
	}

	p.result = make([]netip.Addr, len(pools))
	for i, pl := range pools {
		var a netip.Addr
		isNew, fromCursor := false, false
		if want[i].IsValid() {
			a = want[i]
			isNew, err = s.takeRequested(a, pl, p.tok)
		} else if a, isNew, err = s.kept(pl, p.listed, owned); err == nil && !a.IsValid() {
			a, fromCursor, err = s.fresh(pl, memory, p.tok)
			isNew = true
		}
		if err != nil {
			return nil, err
		}
		p.result[i] = a
		if isNew {
			p.create = append(p.create, a)
		}
		if fromCursor {
			p.picked = append(p.picked, i)
		}
	}
	for _, a := range p.listed {
		if owned[a] && !slices.Contains(p.result, a) {
			p.drop = append(p.drop, a)
		}
	}
	return p, nil
}

// kept is the address the pair already has in pl, if any; isNew when it is
// listed in the record but not reserved (an interrupted earlier call) and
// nobody took it in between, so it must be reserved again.
func (s *Store) kept(pl pool, listed []netip.Addr, owned map[netip.Addr]bool) (a netip.Addr, isNew bool, err error) {
	for _, a := range listed {
		if !pl.assignable(a) {
			continue
		}
		if owned[a] {
			return a, false, nil
		}
		if _, exists, err := s.owner(a); err != nil {
			return netip.Addr{}, false, err
		} else if !exists {
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// applyAlloc writes p: record, reservations, then the tidying up.
func (s *Store) applyAlloc(p *allocPlan, pools []pool) error {
	// The record grows before the symlinks appear, so that a crash at any
	// point below leaves every reservation of this pair listed in its record
	// (Release can clean it), and nothing is reserved that is not listed.
	union := slices.Clone(p.result)
	for _, a := range p.listed {
		if !slices.Contains(union, a) {
			union = append(union, a)
		}
	}
	if !sameSet(union, p.listed) || p.meta != p.oldMeta {
		if err := s.writeRecordMeta(p.id, p.ifname, union, p.meta, !p.exists); err != nil {
			return err
		}
	}
	at("allocate:record-grown")
	for n, a := range p.create {
		if err := s.reserve(a, p.tok); err != nil {
			// Undo this call: its reservations, then the record.
			for _, c := range p.create[:n] {
				if uerr := s.unreserve(c, p.tok); uerr != nil {
					err = errors.Join(err, uerr)
				}
			}
			if rerr := s.writeRecordMeta(p.id, p.ifname, p.listed, p.oldMeta, false); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return err
		}
		at(fmt.Sprintf("allocate:reserved:%d", n))
	}

	// The call has succeeded; what follows only tidies up. If it is
	// interrupted, the record still lists the dropped addresses, so a later
	// Release or Allocate frees them.
	final := slices.Clone(p.result)
	for _, a := range p.drop {
		if err := s.unreserve(a, p.tok); err != nil {
			slog.Warn("ipam: could not release an address outside the current subnets; kept in the record for a later Release",
				"container", p.id, "ifname", p.ifname, "address", a, "err", err)
			final = append(final, a)
		}
		at("allocate:dropped")
	}
	if !sameSet(final, union) {
		if err := s.writeRecordMeta(p.id, p.ifname, final, p.meta, false); err != nil {
			slog.Warn("ipam: could not shrink the record; it still lists released addresses", "container", p.id, "ifname", p.ifname, "err", err)
		}
		at("allocate:record-shrunk")
	}
	for _, i := range p.picked {
		s.writeCursor(pools[i], p.result[i])
	}
	return nil
}

// takeRequested checks a requested address: held by the pair already
// (isNew false), free, or held by a leftover of a container that is gone
// (often the requester itself, back under a new ID), which is reclaimed.
func (s *Store) takeRequested(a netip.Addr, pl pool, tok string) (isNew bool, err error) {
	o, exists, err := s.owner(a)
	if err != nil || (exists && o == tok) {
		return false, err
	}
	if exists {
		_, ok, err := s.reclaimWhere(func(x netip.Addr) bool { return x == a }, tok, false)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("ipam: requested address %s in subnet %s is held by another container: %w", a, pl.prefix, ErrInUse)
		}
	}
	return true, nil
}

// fresh chooses an address in pl for a pair that holds none there: a
// remembered one if free, else the next after the cursor (fromCursor), else,
// as a last resort, a leftover's.
func (s *Store) fresh(pl pool, memory []netip.Addr, tok string) (a netip.Addr, fromCursor bool, err error) {
	if a, err := s.freeFrom(pl, memory); err != nil || a.IsValid() {
		return a, false, err
	}
	a, err = s.pick(pl)
	if !errors.Is(err, ErrExhausted) {
		return a, err == nil, err
	}
	r, ok, rerr := s.reclaimWhere(pl.assignable, tok, false)
	if rerr != nil {
		return netip.Addr{}, false, errors.Join(err, rerr)
	}
	if !ok {
		return netip.Addr{}, false, err
	}
	return r, false, nil
}

// forget takes back addresses a failed Allocate reserved for the pair, if it
// still holds them, and drops them from its record.
func (s *Store) forget(id, ifname string, addrs []netip.Addr) error {
	tok := token(id, ifname)
	listed, meta, _, err := s.readRecordMeta(id, ifname, tok)
	if err != nil {
		return err
	}
	var errs error
	for _, a := range addrs {
		if err := s.unreserve(a, tok); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	if errs != nil {
		return errs
	}
	keep := slices.DeleteFunc(listed, func(a netip.Addr) bool { return slices.Contains(addrs, a) })
	return s.writeRecordMeta(id, ifname, keep, meta, false)
}

// Get returns the allocation of (id, ifname), or nil if it holds none.
func (s *Store) Get(id, ifname string) (*Allocation, error) {
	if err := checkPair(id, ifname); err != nil {
		return nil, err
	}
	unlock, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.getLocked(id, ifname)
}

// getLocked is Get's work under the lock (a Reclaimer, called with the lock
// held, may use it too).
func (s *Store) getLocked(id, ifname string) (*Allocation, error) {
	tok := token(id, ifname)
	listed, _, err := s.readRecord(id, ifname, tok)
	if err != nil {
		return nil, err
	}
	held, err := s.held(listed, tok)
	if err != nil || len(held) == 0 {
		return nil, err
	}
	return &Allocation{ContainerID: id, IfName: ifname, IPs: toNetIPs(held)}, nil
}

// held filters listed down to the addresses whose reservation is tok's.
func (s *Store) held(listed []netip.Addr, tok string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range listed {
		o, ok, err := s.owner(a)
		if err != nil {
			return nil, err
		}
		if ok && o == tok {
			out = append(out, a)
		}
	}
	return out, nil
}

// Release frees every address of (id, ifname). Releasing a pair that holds
// nothing is not an error. Addresses outside the current subnets are
// released too (the node subnet may have changed since they were given).
func (s *Store) Release(id, ifname string) error {
	if err := checkPair(id, ifname); err != nil {
		return err
	}
	changed := false
	err := s.locked(func() error {
		var err error
		changed, err = s.releaseLocked(id, ifname)
		return err
	})
	if changed {
		// Outside the lock, like Allocate's.
		if serr := s.sync(s.ips); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return fmt.Errorf("ipam: release %s/%s: %w", id, ifname, err)
	}
	return nil
}

func (s *Store) releaseLocked(id, ifname string) (changed bool, err error) {
	tok := token(id, ifname)
	listed, meta, exists, err := s.readRecordMeta(id, ifname, tok)
	if err != nil || !exists {
		return false, err
	}
	held, err := s.held(listed, tok)
	if err != nil {
		return false, err
	}
	var left []netip.Addr
	var errs error
	for _, a := range listed {
		if err := s.unreserve(a, tok); err != nil {
			left = append(left, a)
			errs = errors.Join(errs, err)
		}
		at("release:unreserved")
	}
	// The record shrinks only after the symlinks are gone.
	if err := s.writeRecordMeta(id, ifname, left, meta, false); err != nil {
		errs = errors.Join(errs, err)
	}
	at("release:record-written")
	s.remember(tok, held)
	return true, errs
}

// List returns every allocation in the store.
func (s *Store) List() ([]Allocation, error) {
	unlock, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer unlock()
	names, err := readDirNames(s.pairs)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	slices.Sort(names)
	var out []Allocation
	for _, n := range names {
		id, ifname, ok := parseRecordName(n)
		if !ok {
			// Hashed name (over-long ID): the identity is in the content.
			rec, err := s.loadRecordFile(n)
			if err != nil || rec.ContainerID == "" {
				continue
			}
			id, ifname = rec.ContainerID, rec.IfName
		}
		a, err := s.getLocked(id, ifname)
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, *a)
		}
	}
	return out, nil
}

// Free reports whether at least one address is still free in subnet.
func (s *Store) Free(subnet *net.IPNet) (bool, error) {
	pl, err := newPool(subnet)
	if err != nil {
		return false, fmt.Errorf("ipam: %w", err)
	}
	if pl.empty() {
		return false, nil
	}
	unlock, err := s.acquire()
	if err != nil {
		return false, err
	}
	defer unlock()
	a := s.readCursor(pl)
	for range min(pl.capacity, probeFree) {
		a = pl.next(a)
		_, exists, err := s.owner(a)
		if err != nil {
			return false, err
		}
		if !exists {
			return true, nil
		}
	}
	used, err := s.usedIn(pl)
	if err != nil {
		return false, err
	}
	if uint64(len(used)) < pl.capacity {
		return true, nil
	}
	// ADD would reclaim a leftover of a container that is gone.
	_, ok, err := s.reclaimWhere(pl.assignable, "", true)
	return ok, err
}

func (s *Store) sync(dir string) error {
	if s.opts.NoSync {
		return nil
	}
	if err := fsyncPath(dir); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

func checkPair(id, ifname string) error {
	if id == "" {
		return errors.New("ipam: empty container ID")
	}
	if ifname == "" {
		return fmt.Errorf("ipam: empty interface name for container %s", id)
	}
	if strings.ContainsRune(id+ifname, 0) {
		return fmt.Errorf("ipam: container ID %q or interface name %q contains a NUL byte", id, ifname)
	}
	return nil
}

func sameSet(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func toNetIPs(as []netip.Addr) []net.IP {
	out := make([]net.IP, len(as))
	for i, a := range as {
		out[i] = toNetIP(a)
	}
	return out
}
