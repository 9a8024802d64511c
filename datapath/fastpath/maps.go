package fastpath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Version is the contract between the plugin and the daemon: the layout of
// the maps and the meaning of their entries. It is part of the pin path, so
// a plugin and a daemon of different versions never read each other's maps;
// a new version starts from empty maps and fills them from the kernel state.
const Version = 1

// BPFFS is where bpffs is (or gets) mounted.
const BPFFS = "/sys/fs/bpf"

// FlagSlow marks a pod that must keep the ordinary path (shaped by the
// bandwidth plugin, target of a portmap DNAT, ...): nothing is redirected to
// it and its own veth carries no program.
const FlagSlow = 1

// Map value layouts (offsets used by the programs).
const (
	podIfindexOff = 0
	podFlagsOff   = 4
	podMACOff     = 8
	podGwMACOff   = 14

	peerIfindexOff = 0
	peerDstMACOff  = 4
	peerSrcMACOff  = 10
	peerMTUOff     = 16
	peerGwOff      = 20
)

// Pod is a local pod: its address, the ifindex of its host-side veth, its
// MAC, and the MAC its packets should appear to come from (the bridge).
type Pod struct {
	Ifindex uint32
	Flags   uint32
	MAC     [6]byte
	GwMAC   [6]byte
	Created uint32 // unix seconds of the plugin's ADD (for Node.Grace)
}

// Peer is a remote pod subnet: the VXLAN device's ifindex, the remote VTEP
// device's MAC (the fdb maps it to the VTEP), the local device's MAC and
// MTU, and the route's gateway (for bpf_redirect_neigh).
type Peer struct {
	Ifindex uint32
	DstMAC  [6]byte
	SrcMAC  [6]byte
	MTU     uint32 // the device's: bigger non-GSO packets take the stack
	Gw      [16]byte
}

type peerKey struct {
	PrefixLen uint32
	Addr      [16]byte
}

// Maps are the per-host pinned maps.
type Maps struct {
	Dir   string // pin directory, per host and version
	Pods  *ebpf.Map
	Peers *ebpf.Map
}

// soNetnsCookie is SO_NETNS_COOKIE (not in x/sys/unix yet).
const soNetnsCookie = 71

// PinDir is the pin directory for the network namespace the calling thread
// is in: ifindexes are per namespace, and testbed "hosts" share one bpffs.
// It is keyed by the namespace's cookie, which the kernel never reuses
// (an inode number is reused once a namespace is gone, and a new namespace
// must not adopt a dead one's maps).
func PinDir() (string, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("socket for the netns cookie: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie)
	if err != nil {
		return "", fmt.Errorf("read netns cookie: %w", err)
	}
	return filepath.Join(BPFFS, "vxlan6", fmt.Sprintf("netns%d", cookie), fmt.Sprintf("v%d", Version)), nil
}

// RemoveHost detaches every program and removes every map of the network
// namespace the calling thread is in, all versions (the namespace is about
// to go: pins would otherwise outlive it in bpffs).
func RemoveHost() error {
	dir, err := PinDir()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Dir(dir), err)
	}
	return nil
}

// ensureBPFFS mounts bpffs at BPFFS when nothing is mounted there (minimal
// hosts and fresh namespaces start without it).
func ensureBPFFS() error {
	var fs unix.Statfs_t
	if err := unix.Statfs(BPFFS, &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", BPFFS, err)
	}
	if fs.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", BPFFS, err)
	}
	return nil
}

// OpenMaps opens (creating them if needed) the pinned maps of this host.
func OpenMaps() (*Maps, error) {
	if err := ensureBPFFS(); err != nil {
		return nil, err
	}
	dir, err := PinDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory %s: %w", dir, err)
	}
	opts := ebpf.MapOptions{PinPath: dir}
	pods, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: "vx6_pods", Type: ebpf.Hash, KeySize: 16, ValueSize: 24, MaxEntries: 4096, Pinning: ebpf.PinByName,
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("open pods map in %s: %w", dir, err)
	}
	peers, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: "vx6_peers", Type: ebpf.LPMTrie, KeySize: 20, ValueSize: 36, MaxEntries: 16384,
		Flags: unix.BPF_F_NO_PREALLOC, Pinning: ebpf.PinByName,
	}, opts)
	if err != nil {
		pods.Close()
		return nil, fmt.Errorf("open peers map in %s: %w", dir, err)
	}
	return &Maps{Dir: dir, Pods: pods, Peers: peers}, nil
}

// OpenPinnedMaps opens this host's maps if they exist (the daemon runs the
// fast path), else returns nil, nil: the plugin never creates them.
func OpenPinnedMaps() (*Maps, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(BPFFS, &fs); err != nil || fs.Type != unix.BPF_FS_MAGIC {
		return nil, nil
	}
	dir, err := PinDir()
	if err != nil {
		return nil, err
	}
	pods, err := ebpf.LoadPinnedMap(filepath.Join(dir, "vx6_pods"), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open pinned pods map in %s: %w", dir, err)
	}
	peers, err := ebpf.LoadPinnedMap(filepath.Join(dir, "vx6_peers"), nil)
	if err != nil {
		pods.Close()
		return nil, fmt.Errorf("open pinned peers map in %s: %w", dir, err)
	}
	return &Maps{Dir: dir, Pods: pods, Peers: peers}, nil
}

// Close releases the file descriptors; the pinned maps stay.
func (m *Maps) Close() {
	m.Pods.Close()
	m.Peers.Close()
}

func addr16(ip net.IP) ([16]byte, error) {
	var k [16]byte
	if ip.To4() != nil || ip.To16() == nil {
		return k, fmt.Errorf("%v is not an IPv6 address", ip)
	}
	copy(k[:], ip.To16())
	return k, nil
}

// PutPod adds or replaces the entry of a local pod address.
func (m *Maps) PutPod(ip net.IP, p Pod) error {
	k, err := addr16(ip)
	if err != nil {
		return err
	}
	if err := m.Pods.Put(k, p); err != nil {
		return fmt.Errorf("put pod %s in %s: %w", ip, m.Dir, err)
	}
	return nil
}

// DeletePod removes a pod address (absent is fine).
func (m *Maps) DeletePod(ip net.IP) error {
	k, err := addr16(ip)
	if err != nil {
		return err
	}
	if err := m.Pods.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete pod %s from %s: %w", ip, m.Dir, err)
	}
	return nil
}

// Pods lists the pod entries.
func (m *Maps) PodEntries() (map[string]Pod, error) {
	out := map[string]Pod{}
	var k [16]byte
	var v Pod
	it := m.Pods.Iterate()
	for it.Next(&k, &v) {
		out[net.IP(k[:]).String()] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", m.Dir, err)
	}
	return out, nil
}

func peerKeyOf(subnet *net.IPNet) (peerKey, error) {
	ones, bits := subnet.Mask.Size()
	a, err := addr16(subnet.IP)
	if err != nil || bits != 128 {
		return peerKey{}, fmt.Errorf("peer subnet %v is not an IPv6 prefix", subnet)
	}
	return peerKey{PrefixLen: uint32(ones), Addr: a}, nil
}

// PutPeer adds or replaces a remote pod subnet.
func (m *Maps) PutPeer(subnet *net.IPNet, p Peer) error {
	k, err := peerKeyOf(subnet)
	if err != nil {
		return err
	}
	if err := m.Peers.Put(k, p); err != nil {
		return fmt.Errorf("put peer %s in %s: %w", subnet, m.Dir, err)
	}
	return nil
}

// DeletePeer removes a remote pod subnet (absent is fine).
func (m *Maps) DeletePeer(subnet *net.IPNet) error {
	k, err := peerKeyOf(subnet)
	if err != nil {
		return err
	}
	if err := m.Peers.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete peer %s from %s: %w", subnet, m.Dir, err)
	}
	return nil
}

// PeerEntries lists the peer entries by subnet.
func (m *Maps) PeerEntries() (map[string]Peer, error) {
	out := map[string]Peer{}
	var k peerKey
	var v Peer
	it := m.Peers.Iterate()
	for it.Next(&k, &v) {
		n := net.IPNet{IP: net.IP(append([]byte(nil), k.Addr[:]...)), Mask: net.CIDRMask(int(k.PrefixLen), 128)}
		out[n.String()] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list peers in %s: %w", m.Dir, err)
	}
	return out, nil
}
