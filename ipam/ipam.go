// Package ipam allocates container addresses from this node's pod subnet(s).
//
// State lives in a directory (the plugin's dataDir) so that every plugin
// process on the node, each a short-lived exec, sees one truth:
//
//	<dataDir>/lock          flock(2)ed for the duration of every operation
//	<dataDir>/ips/<addr>    symlink -> owner token of the (container ID, ifname)
//	<dataDir>/pairs/<name>  JSON record of a pair: its ID, ifname and addresses
//	<dataDir>/cursors/<net> last address handed out in a subnet (a hint only)
//	<dataDir>/tmp/          scratch for atomic create-and-rename
//	<dataDir>/last/<bucket> last addresses of released pairs (memory.go)
//	<dataDir>/boot          boot ID served last, and the one before (boot.go)
//	<dataDir>/boots/<id>/   ips/ and pairs/ of the previous boot
//	<dataDir>/trash/        older boots' state, removed bit by bit
//
// An address is held exactly when its symlink exists. symlink(2) creates a
// name and its content in one atomic step that fails if the name exists, so
// a reservation can never be torn, half-written or silently duplicated, and
// owner checks are a readlink(2). A pair's record always lists a superset of
// the addresses whose symlinks point at the pair (it is written before
// symlinks are made and shrunk only after they are removed), so Release of a
// pair finds everything it holds, whatever point a crash interrupted.
//
// Records also say which boot made them and which netns and host veth the
// container had (Owner), so that the allocations of an earlier boot are let
// go at once (boot.go) and those of containers that died without DEL can be
// reclaimed when a pool runs out (reclaim.go).
//
// See store.go for the durability (fsync) decision.
package ipam

import (
	"errors"
	"net"
)

// Errors the plugin maps to CNI error codes; wrap them, test with errors.Is.
var (
	// ErrOutsideSubnet: a requested address is not in any node subnet, or it
	// is the network/gateway/broadcast address.
	ErrOutsideSubnet = errors.New("requested address is outside the node subnet")
	// ErrInUse: a requested address is already allocated to another
	// (container ID, ifname).
	ErrInUse = errors.New("requested address is already allocated")
	// ErrExhausted: no free address is left in a subnet.
	ErrExhausted = errors.New("no free address left in the subnet")
)

// Allocation is what one (container ID, ifname) holds.
type Allocation struct {
	ContainerID string
	IfName      string
	IPs         []net.IP // one per subnet it was allocated from
}

// Gateway is the address the node bridge holds in subnet: the first host
// address (network + 1).
func Gateway(subnet *net.IPNet) net.IP {
	p, err := prefixOf(subnet)
	if err != nil {
		return nil
	}
	return toNetIP(p.Addr().Next())
}
