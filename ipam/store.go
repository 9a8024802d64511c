package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
// So every operation that changed something fsyncs the directories it
// changed once, at its end, before returning (on ext4 this is one journal
// commit: the second fsync finds nothing left to commit). File data is not
// fsynced before rename, which would double the cost: a record torn by power
// loss is detected (it fails to parse) and rebuilt from the reservation
// symlinks, whose owner lives atomically in the inode. Reads and idempotent
// repeats write nothing and never fsync. Options.NoSync drops the fsync for
// state on tmpfs or for tests.

// Options tunes a Store.
type Options struct {
	// NoSync skips the fsync at the end of mutating operations. Safe against
	// process crashes, not against power loss.
	NoSync bool
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
}

const (
	probeAllocate = 64 // candidates tried from the cursor before counting allocations
	probeFree     = 16
	maxRecordName = 200 // below NAME_MAX (255) with room for the tmp prefix
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
	for _, d := range []string{s.ips, s.pairs, s.cursors, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("ipam: create state dir %s: %w", d, err)
		}
	}
	lk, err := openLock(filepath.Join(dataDir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	s.lk = lk
	if err := s.removeLeftovers(); err != nil {
		lk.Close()
		return nil, err
	}
	return s, nil
}

// removeLeftovers deletes temp files of crashed operations. Writers make temp
// files only while holding the lock, so whatever is there once we hold it is
// garbage. It is harmless anyway (never read), this just reclaims space.
func (s *Store) removeLeftovers() error {
	unlock, err := s.acquire()
	if err != nil {
		return err
	}
	defer unlock()
	names, err := readDirNames(s.tmp)
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(s.tmp, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ipam: remove leftover temp file %s: %w", filepath.Join(s.tmp, n), err)
		}
	}
	return nil
}

// Close releases resources held by the store (not the allocations).
func (s *Store) Close() error {
	if s == nil || s.lk == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
	return func() {
		_ = s.lk.Unlock()
		s.mu.Unlock()
	}, nil
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

	unlock, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer unlock()

	tok := token(id, ifname)
	listed, _, err := s.readRecord(id, ifname, tok)
	if err != nil {
		return nil, err
	}
	owned := make(map[netip.Addr]bool, len(listed))
	for _, a := range listed {
		o, ok, err := s.owner(a)
		if err != nil {
			return nil, err
		}
		owned[a] = ok && o == tok
	}

	result := make([]netip.Addr, len(pools))
	var create []netip.Addr
	var picked []int
	for i, pl := range pools {
		if a := want[i]; a.IsValid() {
			o, exists, err := s.owner(a)
			if err != nil {
				return nil, err
			}
			if exists && o != tok {
				return nil, fmt.Errorf("ipam: requested address %s in subnet %s is held by another container: %w", a, pl.prefix, ErrInUse)
			}
			result[i] = a
			if !exists {
				create = append(create, a)
			}
			continue
		}
		// Keep what the pair already has in this subnet.
		for _, a := range listed {
			if !pl.assignable(a) {
				continue
			}
			if owned[a] {
				result[i] = a
				break
			}
			// Listed but not held: an interrupted earlier call. Take it
			// back if nobody else did in between.
			if _, exists, err := s.owner(a); err != nil {
				return nil, err
			} else if !exists {
				result[i] = a
				create = append(create, a)
				break
			}
		}
		if result[i].IsValid() {
			continue
		}
		a, err := s.pick(pl)
		if err != nil {
			return nil, err
		}
		result[i] = a
		create = append(create, a)
		picked = append(picked, i)
	}

	var drop []netip.Addr
	for _, a := range listed {
		if owned[a] && !slices.Contains(result, a) {
			drop = append(drop, a)
		}
	}
	if len(create) == 0 && len(drop) == 0 && sameSet(listed, result) {
		return toNetIPs(result), nil
	}

	// The record grows before the symlinks appear, so that a crash at any
	// point below leaves every reservation of this pair listed in its record
	// (Release can clean it), and nothing is reserved that is not listed.
	union := slices.Clone(result)
	for _, a := range listed {
		if !slices.Contains(union, a) {
			union = append(union, a)
		}
	}
	if !sameSet(union, listed) {
		if err := s.writeRecord(id, ifname, union); err != nil {
			return nil, err
		}
	}
	undo := func(n int, cause error) error {
		for _, c := range create[:n] {
			if err := s.unreserve(c, tok); err != nil {
				cause = errors.Join(cause, err)
			}
		}
		if err := s.writeRecord(id, ifname, listed); err != nil {
			cause = errors.Join(cause, err)
		}
		return cause
	}
	for n, a := range create {
		if err := s.reserve(a, tok); err != nil {
			return nil, undo(n, err)
		}
	}
	// Durable before the runtime hears of it (see the fsync decision above).
	if err := s.sync(s.ips, s.pairs); err != nil {
		return nil, undo(len(create), err)
	}

	// Past this point the call has succeeded; what follows only tidies up
	// and needs no fsync: if it is lost, the record still lists the dropped
	// addresses, so a later Release or Allocate frees them.
	final := slices.Clone(result)
	for _, a := range drop {
		if err := s.unreserve(a, tok); err != nil {
			slog.Warn("ipam: could not release an address outside the current subnets; kept in the record for a later Release",
				"container", id, "ifname", ifname, "address", a, "error", err)
			final = append(final, a)
		}
	}
	if !sameSet(final, union) {
		if err := s.writeRecord(id, ifname, final); err != nil {
			slog.Warn("ipam: could not shrink the record; it still lists released addresses", "container", id, "ifname", ifname, "error", err)
		}
	}
	for _, i := range picked {
		s.writeCursor(pools[i], result[i])
	}
	return toNetIPs(result), nil
}

// pick finds a free address in pl, starting after the subnet's cursor so that
// addresses are not reused right after release (stale neighbour/conntrack
// entries) and so that a /64 is never scanned: the first few candidates are
// probed with lstat; only if they are all taken are the allocations in the
// subnet counted, which is O(allocations), never O(subnet size).
func (s *Store) pick(pl pool) (netip.Addr, error) {
	cur := s.readCursor(pl)
	a := cur
	probes := min(pl.capacity, probeAllocate)
	for range probes {
		a = pl.next(a)
		_, exists, err := s.owner(a)
		if err != nil {
			return netip.Addr{}, err
		}
		if !exists {
			return a, nil
		}
	}
	used, err := s.usedIn(pl)
	if err != nil {
		return netip.Addr{}, err
	}
	if uint64(len(used)) >= pl.capacity {
		return netip.Addr{}, fmt.Errorf("ipam: subnet %s: all %d assignable addresses are allocated: %w", pl.prefix, pl.capacity, ErrExhausted)
	}
	// Fewer than capacity are used, so within len(used)+1 steps one is free.
	a = cur
	for range len(used) + 1 {
		a = pl.next(a)
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("ipam: subnet %s: no free address found among %d allocations: %w", pl.prefix, len(used), ErrExhausted)
}

// usedIn returns the reserved addresses inside pl.
func (s *Store) usedIn(pl pool) (map[netip.Addr]bool, error) {
	names, err := readDirNames(s.ips)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	used := make(map[netip.Addr]bool)
	for _, n := range names {
		a, err := netip.ParseAddr(n)
		if err == nil && pl.assignable(a) {
			used[a] = true
		}
	}
	return used, nil
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
	unlock, err := s.acquire()
	if err != nil {
		return err
	}
	defer unlock()
	tok := token(id, ifname)
	listed, exists, err := s.readRecord(id, ifname, tok)
	if err != nil || !exists {
		return err
	}
	var left []netip.Addr
	var errs error
	for _, a := range listed {
		if err := s.unreserve(a, tok); err != nil {
			left = append(left, a)
			errs = errors.Join(errs, err)
		}
	}
	// The record shrinks only after the symlinks are gone.
	if err := s.writeRecord(id, ifname, left); err != nil {
		errs = errors.Join(errs, err)
	}
	if err := s.sync(s.ips, s.pairs); err != nil {
		errs = errors.Join(errs, err)
	}
	if errs != nil {
		return fmt.Errorf("ipam: release %s/%s: %w", id, ifname, errs)
	}
	return nil
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
		tok := token(id, ifname)
		listed, _, err := s.readRecord(id, ifname, tok)
		if err != nil {
			return nil, err
		}
		held, err := s.held(listed, tok)
		if err != nil {
			return nil, err
		}
		if len(held) > 0 {
			out = append(out, Allocation{ContainerID: id, IfName: ifname, IPs: toNetIPs(held)})
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
	return uint64(len(used)) < pl.capacity, nil
}

// --- reservations (symlinks) ---

func (s *Store) ipPath(a netip.Addr) string { return filepath.Join(s.ips, a.String()) }

// owner returns the token a's reservation points at, if it is reserved.
func (s *Store) owner(a netip.Addr) (string, bool, error) {
	t, err := os.Readlink(s.ipPath(a))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		// Not a symlink (EINVAL) still occupies the name: treat it as held
		// by nobody we know, which is never handed out.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			if _, serr := os.Lstat(s.ipPath(a)); serr == nil {
				return "", true, nil
			}
		}
		return "", false, fmt.Errorf("ipam: read reservation of %s: %w", a, err)
	}
	return t, true, nil
}

func (s *Store) reserve(a netip.Addr, tok string) error {
	if err := os.Symlink(tok, s.ipPath(a)); err != nil {
		return fmt.Errorf("ipam: reserve %s: %w", a, err)
	}
	return nil
}

// unreserve removes a's reservation if it is tok's.
func (s *Store) unreserve(a netip.Addr, tok string) error {
	o, ok, err := s.owner(a)
	if err != nil || !ok || o != tok {
		return err
	}
	if err := os.Remove(s.ipPath(a)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ipam: release %s: %w", a, err)
	}
	return nil
}

// --- pair records ---

type record struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	IPs         []string `json:"ips"`
}

// token is what a pair's reservations point at: short enough for an inline
// ("fast") symlink, which needs no data block.
func token(id, ifname string) string {
	h := sha256.Sum256([]byte(id + "\x00" + ifname))
	return hex.EncodeToString(h[:16])
}

// recordName encodes the pair reversibly, so List knows who a record belongs
// to from its name alone, even if power loss tore its content.
func recordName(id, ifname string) string {
	n := escape(id) + "+" + escape(ifname)
	if len(n) > maxRecordName {
		h := sha256.Sum256([]byte(id + "\x00" + ifname))
		return "~" + hex.EncodeToString(h[:])
	}
	return n
}

func parseRecordName(n string) (id, ifname string, ok bool) {
	a, b, found := strings.Cut(n, "+")
	if !found {
		return "", "", false
	}
	id, err1 := unescape(a)
	ifname, err2 := unescape(b)
	if err1 != nil || err2 != nil || id == "" || ifname == "" {
		return "", "", false
	}
	return id, ifname, true
}

func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescape(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("bad escape in %q", v)
		}
		x, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", v)
		}
		b.WriteByte(byte(x))
		i += 2
	}
	return b.String(), nil
}

func (s *Store) loadRecordFile(name string) (record, error) {
	var rec record
	b, err := os.ReadFile(filepath.Join(s.pairs, name))
	if err != nil {
		return rec, err
	}
	err = json.Unmarshal(b, &rec)
	return rec, err
}

// readRecord returns the addresses listed for the pair and whether it has a
// record. A record that does not parse (torn by power loss) is rebuilt from
// the reservations pointing at tok: slow, but only ever after a crash.
func (s *Store) readRecord(id, ifname, tok string) ([]netip.Addr, bool, error) {
	rec, err := s.loadRecordFile(recordName(id, ifname))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	var addrs []netip.Addr
	if err == nil && rec.ContainerID == id && rec.IfName == ifname {
		for _, v := range rec.IPs {
			a, perr := netip.ParseAddr(v)
			if perr != nil {
				err = perr
				break
			}
			addrs = append(addrs, a)
		}
		if err == nil {
			return addrs, true, nil
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, false, fmt.Errorf("ipam: read record of %s/%s: %w", id, ifname, err)
	}
	addrs, err = s.scanOwned(tok)
	return addrs, true, err
}

func (s *Store) scanOwned(tok string) ([]netip.Addr, error) {
	names, err := readDirNames(s.ips)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	var out []netip.Addr
	for _, n := range names {
		a, err := netip.ParseAddr(n)
		if err != nil {
			continue
		}
		if o, ok, _ := s.owner(a); ok && o == tok {
			out = append(out, a)
		}
	}
	return out, nil
}

// writeRecord replaces the pair's record atomically (write a temp file,
// rename it over); an empty list removes the record.
func (s *Store) writeRecord(id, ifname string, addrs []netip.Addr) error {
	path := filepath.Join(s.pairs, recordName(id, ifname))
	if len(addrs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ipam: remove record of %s/%s: %w", id, ifname, err)
		}
		return nil
	}
	rec := record{ContainerID: id, IfName: ifname}
	for _, a := range addrs {
		rec.IPs = append(rec.IPs, a.String())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.replaceFile(path, b); err != nil {
		return fmt.Errorf("ipam: write record of %s/%s: %w", id, ifname, err)
	}
	return nil
}

func (s *Store) replaceFile(path string, data []byte) error {
	s.tmpSeq++
	tmp := filepath.Join(s.tmp, fmt.Sprintf("%d.%d", os.Getpid(), s.tmpSeq))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// --- cursors ---

func (s *Store) cursorPath(pl pool) string {
	return filepath.Join(s.cursors, strings.ReplaceAll(pl.prefix.String(), "/", "_"))
}

// readCursor returns the last address handed out in pl; a missing, torn or
// stale cursor just restarts at the beginning of the pool.
func (s *Store) readCursor(pl pool) netip.Addr {
	b, err := os.ReadFile(s.cursorPath(pl))
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil || !pl.assignable(a) {
		return netip.Addr{}
	}
	return a
}

// writeCursor overwrites in place, without rename or fsync: the cursor is a
// hint, and a torn one is read as "start over".
func (s *Store) writeCursor(pl pool, a netip.Addr) {
	_ = os.WriteFile(s.cursorPath(pl), []byte(a.String()+"\n"), 0o644)
}

// --- helpers ---

func (s *Store) sync(dirs ...string) error {
	if s.opts.NoSync {
		return nil
	}
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			return fmt.Errorf("ipam: sync %s: %w", d, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("ipam: sync %s: %w", d, err)
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read dir %s: %w", dir, err)
	}
	return names, nil
}

func checkPair(id, ifname string) error {
	if id == "" {
		return errors.New("ipam: empty container ID")
	}
	if ifname == "" {
		return fmt.Errorf("ipam: empty interface name for container %s", id)
	}
	return nil
}

func poolsOf(subnets []*net.IPNet) ([]pool, error) {
	if len(subnets) == 0 {
		return nil, errors.New("ipam: no subnet to allocate from")
	}
	pools := make([]pool, 0, len(subnets))
	for _, n := range subnets {
		pl, err := newPool(n)
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		if pl.empty() {
			return nil, fmt.Errorf("ipam: subnet %s has no assignable address (network, gateway and broadcast are reserved): %w", pl.prefix, ErrExhausted)
		}
		for _, o := range pools {
			if o.prefix.Overlaps(pl.prefix) {
				return nil, fmt.Errorf("ipam: subnets %s and %s overlap", o.prefix, pl.prefix)
			}
		}
		pools = append(pools, pl)
	}
	return pools, nil
}

// matchRequested assigns each requested address to the subnet containing it.
func matchRequested(pools []pool, requested []net.IP) ([]netip.Addr, error) {
	want := make([]netip.Addr, len(pools))
	for _, ip := range requested {
		a, ok := addrOf(ip)
		if !ok {
			return nil, fmt.Errorf("ipam: invalid requested address %q", ip)
		}
		i := slices.IndexFunc(pools, func(pl pool) bool { return pl.prefix.Contains(a) })
		if i < 0 {
			return nil, fmt.Errorf("ipam: requested address %s is outside the node subnets %s: %w", a, prefixList(pools), ErrOutsideSubnet)
		}
		pl := pools[i]
		if !pl.assignable(a) {
			return nil, fmt.Errorf("ipam: requested address %s is %s of subnet %s: %w", a, pl.why(a), pl.prefix, ErrOutsideSubnet)
		}
		if want[i].IsValid() && want[i] != a {
			return nil, fmt.Errorf("ipam: requested addresses %s and %s are both in subnet %s; at most one per subnet", want[i], a, pl.prefix)
		}
		want[i] = a
	}
	return want, nil
}

func prefixList(pools []pool) string {
	var parts []string
	for _, pl := range pools {
		parts = append(parts, pl.prefix.String())
	}
	return strings.Join(parts, ", ")
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
