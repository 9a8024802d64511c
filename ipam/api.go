// Package ipam allocates container addresses from this node's pod subnet(s).
//
// API CONTRACT (agreed before implementation; the plugin codes against it):
// the bodies are filled in by the ipam implementation; signatures stay.
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

// Store is the crash-safe allocation store under a data dir. Every method
// takes a cross-process file lock for its duration, so concurrent plugin
// processes on one node never hand out one address twice.
type Store struct {
	dir string
}

// Open opens (creating if needed) the store under dataDir.
func Open(dataDir string) (*Store, error) { panic("ipam: not implemented") }

// Close releases resources held by the store (not the allocations).
func (s *Store) Close() error { return nil }

// Allocate returns one address per subnet for (id, ifname). A repeated call for
// the same pair returns the same addresses (IPs still inside the subnets).
// requested may be nil or hold addresses to pin (matched to the subnet that
// contains them; an address in no subnet is ErrOutsideSubnet, one held by
// another pair ErrInUse). The network address, the gateway (first host
// address) and, for IPv4, the broadcast address are never handed out.
// On any error nothing stays allocated for the pair by this call.
func (s *Store) Allocate(id, ifname string, subnets []*net.IPNet, requested []net.IP) ([]net.IP, error) {
	panic("ipam: not implemented")
}

// Get returns the allocation of (id, ifname), or nil if it holds none.
func (s *Store) Get(id, ifname string) (*Allocation, error) { panic("ipam: not implemented") }

// Release frees every address of (id, ifname). Releasing a pair that holds
// nothing is not an error. Addresses outside the current subnets are
// released too (the node subnet may have changed since they were given).
func (s *Store) Release(id, ifname string) error { panic("ipam: not implemented") }

// List returns every allocation in the store.
func (s *Store) List() ([]Allocation, error) { panic("ipam: not implemented") }

// Free reports whether at least one address is still free in subnet.
func (s *Store) Free(subnet *net.IPNet) (bool, error) { panic("ipam: not implemented") }

// Gateway is the address the node bridge holds in subnet: the first host
// address (network + 1).
func Gateway(subnet *net.IPNet) net.IP { panic("ipam: not implemented") }
