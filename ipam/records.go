// Pair records: pairs/<name> lists what a (container ID, ifname) holds or is
// about to hold. An existing record is replaced by temp file + rename, so
// readers see the old or the new list, never a mix; a fresh one is written in
// place, before any reservation exists, so a torn one lists nothing held.

package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type record struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	IPs         []string `json:"ips"`
	recordMeta
}

// recordMeta is what a record says about where its allocation was made, so
// that a leftover can later be told from a live container: the boot it was
// made in and its Owner (whose fields are the record's keys).
type recordMeta struct {
	Boot string `json:"boot,omitempty"`
	Owner
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
	return loadRecord(filepath.Join(s.pairs, name))
}

func loadRecord(path string) (record, error) {
	var rec record
	b, err := readSmallFile(path)
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
	addrs, _, exists, err := s.readRecordMeta(id, ifname, tok)
	return addrs, exists, err
}

// readRecordMeta is readRecord that also returns the record's metadata
// (empty for a torn record).
func (s *Store) readRecordMeta(id, ifname, tok string) ([]netip.Addr, recordMeta, bool, error) {
	addrs, meta, exists, err := s.readRecordIn(s.pairs, id, ifname)
	if err != errTorn {
		return addrs, meta, exists, err
	}
	addrs, err = s.scanOwned(tok)
	return addrs, recordMeta{}, true, err
}

// errTorn: a record exists but does not parse.
var errTorn = errors.New("torn record")

// readRecordIn reads the pair's record in dir (pairs/ or an earlier boot's).
func (s *Store) readRecordIn(dir, id, ifname string) ([]netip.Addr, recordMeta, bool, error) {
	rec, err := loadRecord(filepath.Join(dir, recordName(id, ifname)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, recordMeta{}, false, nil
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
			return addrs, rec.recordMeta, true, nil
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, recordMeta{}, false, fmt.Errorf("ipam: read record of %s/%s: %w", id, ifname, err)
	}
	return nil, recordMeta{}, true, errTorn
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

// writeRecordMeta replaces the pair's record atomically (write a temp file,
// rename it over), or creates it in place when fresh (none exists); an empty
// list removes the record.
func (s *Store) writeRecordMeta(id, ifname string, addrs []netip.Addr, meta recordMeta, fresh bool) error {
	name := recordName(id, ifname)
	path := filepath.Join(s.pairs, name)
	if len(addrs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ipam: remove record of %s/%s: %w", id, ifname, err)
		}
		return nil
	}
	rec := record{ContainerID: id, IfName: ifname, recordMeta: meta}
	for _, a := range addrs {
		rec.IPs = append(rec.IPs, a.String())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if fresh && !strings.HasPrefix(name, "~") {
		// No record exists: write it in place, sparing the temp dir and a
		// rename (fewer metadata blocks to journal). A crash mid-write
		// leaves a torn record while no reservation exists yet, which
		// reads as "nothing listed" (see readRecord); hashed names are
		// excluded because their identity lives only in the content.
		err = writeFileAt(path, b, unix.O_EXCL)
	} else {
		err = s.replaceFile(path, b)
	}
	if err != nil {
		return fmt.Errorf("ipam: write record of %s/%s: %w", id, ifname, err)
	}
	return nil
}

func (s *Store) replaceFile(path string, data []byte) error {
	s.tmpSeq++
	tmp := filepath.Join(s.tmp, fmt.Sprintf("%d.%d", os.Getpid(), s.tmpSeq))
	err := writeFileAt(tmp, data, unix.O_TRUNC)
	if err == nil {
		// Not os.Rename: it lstats the target first, only to word an error
		// about directories.
		if rerr := unix.Rename(tmp, path); rerr != nil {
			err = &os.LinkError{Op: "rename", Old: tmp, New: path, Err: rerr}
		}
	}
	if err != nil {
		_ = unix.Unlink(tmp)
	}
	return err
}
