package fastpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Underlay decapsulation (Hooks.Decap, a measured prototype, off by
// default): a program on TCX ingress of the underlay interface strips
// outer IPv6 + UDP + VXLAN + inner Ethernet from a packet of a known peer
// VTEP for a local pod and hands it to the pod with bpf_redirect_peer, so it
// skips ip6_rcv, netfilter, the UDP socket lookup, vxlan_rcv and the
// gro_cells deferral. Everything else (GSO skbs, unknown sources, other
// ports or VNIs, IPv4 inside, extension headers) takes the kernel path.

// Frame offsets of the encapsulated packet.
const (
	outerIP6    = ethLen                  // 14
	outerNext   = outerIP6 + 6            // next header
	outerSrc    = outerIP6 + 8            // 22
	outerDst    = outerIP6 + 24           // 38
	udpOff      = outerIP6 + ip6Len       // 54
	vxlanOff    = udpOff + 8              // 62
	innerEth    = vxlanOff + 8            // 70
	innerIP6    = innerEth + ethLen       // 84
	innerHop    = innerIP6 + 7            // 91
	innerDst    = innerIP6 + 24           // 108
	encapLen    = innerIP6 + ip6Len       // 124: what must be linear
	decapShrink = ip6Len + 8 + 8 + ethLen // 70

	// BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (Linux 6.3+; not in older uapi
	// headers): sets skb->protocol to IPv6 for the inner packet.
	adjRoomDecapL3IPv6 = 1 << 8
	adjRoomMAC         = 1 // BPF_ADJ_ROOM_MAC
	adjRoomFixedGSO    = 1 // BPF_F_ADJ_ROOM_FIXED_GSO: gso_size is the inner MSS

	spillOff   = -48 // the pods map value pointer across helper calls
	statKeyOff = -52

	// Per-CPU counters of the stats map.
	statDecap     = 0 // packets decapsulated and redirected
	statAdjustErr = 1 // bpf_skb_adjust_room failed (the packet was dropped)
	statGSO       = 2 // of statDecap, GSO skbs (DecapConfig.GSO)
)

// DecapConfig is what the underlay program compares against: this node's
// VTEP address, the VXLAN device's UDP port and VNI.
type DecapConfig struct {
	VTEP [16]byte
	Port uint16
	VNI  uint32
	// GSO: decapsulate GSO skbs too (Hooks.DecapGSO, an experiment: Linux
	// 6.18 has no BPF_F_ADJ_ROOM_DECAP_L4_UDP, so their skb->encapsulation
	// and SKB_GSO_UDP_TUNNEL* state stays behind, which breaks segmenting
	// them if the pod forwards them).
	GSO bool
}

// le32 is the value a little-endian 32-bit load of b sees.
func le32(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }

// fromUnderlayProgram runs on TCX ingress of the underlay interface.
func fromUnderlayProgram(pods, vteps, stats *ebpf.Map, c DecapConfig) asm.Instructions {
	ins := underlayMatch(pods, vteps, c)
	ins = append(ins, decapRedirect(stats, c.GSO)...)
	return append(ins, pass()...)
}

// underlayMatch jumps to "pass" unless the frame is VXLAN for this node and
// a local pod (R0 = its pods map value, R9 = its veth's ifindex).
func underlayMatch(pods, vteps *ebpf.Map, c DecapConfig) asm.Instructions {
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], c.Port)
	var vni [4]byte
	binary.BigEndian.PutUint32(vni[:], c.VNI<<8) // 3 bytes VNI, 1 reserved
	ins := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	if !c.GSO {
		// A GSO skb (a GRO'd or locally built batch) takes the kernel
		// path: shrinking it would need its gso_type fixed up.
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R6, skbGSOSize, asm.Word),
			asm.JNE.Imm(asm.R2, 0, "pass"))
	}
	ins = append(ins,
		asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, encapLen),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		asm.LoadMem(asm.R2, asm.R7, ethProto, asm.Half),
		asm.JNE.Imm(asm.R2, ethIPv6LE, "pass"),
		asm.LoadMem(asm.R2, asm.R7, outerNext, asm.Byte),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_UDP, "pass"),
	)
	for i := 0; i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R7, outerDst+int16(i), asm.Word),
			asm.JNE.Imm32(asm.R2, le32(c.VTEP[i:i+4]), "pass"))
	}
	ins = append(ins,
		asm.LoadMem(asm.R2, asm.R7, udpOff+2, asm.Half),
		asm.JNE.Imm32(asm.R2, int32(binary.LittleEndian.Uint16(port[:])), "pass"),
		asm.LoadMem(asm.R2, asm.R7, vxlanOff, asm.Byte),
		asm.JSet.Imm(asm.R2, 0x08, "iflag"),
		asm.Ja.Label("pass"),
		asm.LoadMem(asm.R2, asm.R7, vxlanOff+4, asm.Word).WithSymbol("iflag"),
		asm.And.Imm32(asm.R2, 0x00ffffff),
		asm.JNE.Imm32(asm.R2, le32(vni[:])&0x00ffffff, "pass"),
		asm.LoadMem(asm.R2, asm.R7, innerEth+ethProto, asm.Half),
		asm.JNE.Imm(asm.R2, ethIPv6LE, "pass"),
		asm.LoadMem(asm.R2, asm.R7, innerHop, asm.Byte),
		asm.JLE.Imm(asm.R2, 1, "pass"),
	)
	// The outer source must be a known peer VTEP.
	for i := int16(0); i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R7, outerSrc+i, asm.Word),
			asm.StoreMem(asm.RFP, keyAddrOff+i, asm.R2, asm.Word))
	}
	ins = append(ins, lookup(vteps, keyAddrOff)...)
	ins = append(ins, asm.JEq.Imm(asm.R0, 0, "pass"))
	for i := int16(0); i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R7, innerDst+i, asm.Word),
			asm.StoreMem(asm.RFP, keyAddrOff+i, asm.R2, asm.Word))
	}
	ins = append(ins, lookup(pods, keyAddrOff)...)
	return append(ins,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R0, podFlagsOff, asm.Word),
		asm.JSet.Imm(asm.R2, FlagSlow, "pass"),
		asm.LoadMem(asm.R9, asm.R0, podIfindexOff, asm.Word),
	)
}

// decapRedirect strips the encapsulation and hands the inner packet to the
// pod (R0 = pods map value, R9 = ifindex).
func decapRedirect(stats *ebpf.Map, gso bool) asm.Instructions {
	ins := asm.Instructions{
		asm.StoreMem(asm.RFP, spillOff, asm.R0, asm.DWord),
		asm.Mov.Imm(asm.R4, adjRoomDecapL3IPv6),
	}
	if gso {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R6, skbGSOSize, asm.Word),
			asm.JEq.Imm(asm.R2, 0, "adjust"),
		)
		ins = append(ins, count(stats, statGSO)...)
		ins = append(ins, asm.Mov.Imm(asm.R4, adjRoomDecapL3IPv6|adjRoomFixedGSO))
	}
	ins = append(ins,
		// Remove outer IPv6, UDP, VXLAN and the inner Ethernet header
		// behind the outer Ethernet header, whose type is IPv6 already.
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("adjust"),
		asm.Mov.Imm(asm.R2, -decapShrink),
		asm.Mov.Imm(asm.R3, adjRoomMAC),
		asm.FnSkbAdjustRoom.Call(),
		asm.JEq.Imm(asm.R0, 0, "adjusted"),
	)
	// It fails before it changes the frame: the kernel path takes it.
	ins = append(ins, count(stats, statAdjustErr)...)
	ins = append(ins, asm.Ja.Label("pass"))
	cnt := count(stats, statDecap)
	cnt[0] = cnt[0].WithSymbol("adjusted")
	ins = append(ins, cnt...)
	ins = append(ins, loadFrame("shot")...)
	ins = append(ins, asm.LoadMem(asm.R0, asm.RFP, spillOff, asm.DWord))
	ins = append(ins, copyMAC(0, podMACOff)...)
	ins = append(ins, copyMAC(6, podGwMACOff)...)
	ins = append(ins, decHopLimit()...)
	ins = append(ins, redirectPeer()...)
	return append(ins,
		asm.Mov.Imm(asm.R0, 2).WithSymbol("shot"), // TC_ACT_SHOT: cannot happen
		asm.Return(),
	)
}

// count adds one to the per-CPU counter idx of stats (clobbers R0-R5).
func count(stats *ebpf.Map, idx int32) asm.Instructions {
	ins := asm.Instructions{asm.StoreImm(asm.RFP, statKeyOff, int64(idx), asm.Word)}
	ins = append(ins, lookup(stats, statKeyOff)...)
	return append(ins,
		asm.JEq.Imm(asm.R0, 0, fmt.Sprintf("count%d_done", idx)),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(fmt.Sprintf("count%d_done", idx)),
	)
}

// decapMaps are the underlay program's own maps, pinned beside the others
// (not part of the plugin's contract: only the daemon uses them).
type decapMaps struct {
	vteps *ebpf.Map // peer VTEP address → 1
	stats *ebpf.Map // per-CPU counters (statDecap, statAdjustErr)
}

func openDecapMaps(dir string) (*decapMaps, error) {
	opts := ebpf.MapOptions{PinPath: dir}
	vteps, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: "vx6_vteps", Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: 16384,
		Flags: unix.BPF_F_NO_PREALLOC, Pinning: ebpf.PinByName,
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("open peer VTEPs map in %s: %w", dir, err)
	}
	stats, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: "vx6_decap_stat", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3,
		Pinning: ebpf.PinByName,
	}, opts)
	if err != nil {
		vteps.Close()
		return nil, fmt.Errorf("open decap stats map in %s: %w", dir, err)
	}
	return &decapMaps{vteps: vteps, stats: stats}, nil
}

func (d *decapMaps) close() {
	d.vteps.Close()
	d.stats.Close()
}

// AttachFromUnderlay attaches the decapsulating program to TCX ingress of
// the underlay interface.
func (m *Maps) attachFromUnderlay(d *decapMaps, ifname string, ifindex int, c DecapConfig) error {
	return m.attach("vx6_from_under", fromUnderlayProgram(m.Pods, d.vteps, d.stats, c), ifname, ifindex)
}

// syncVTEPs makes the VTEPs map the set of IPv6 destinations of the VXLAN
// device's fdb entries (the peers the daemon programmed).
func (d *decapMaps) syncVTEPs(h interface {
	NeighList(int, int) ([]netlink.Neigh, error)
}, dev netlink.Link) error {
	fdb, err := h.NeighList(dev.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("list fdb of %s: %w", dev.Attrs().Name, err)
	}
	want := map[[16]byte]bool{}
	for _, e := range fdb {
		if e.IP == nil || e.IP.To4() != nil || e.IP.IsUnspecified() {
			continue
		}
		var k [16]byte
		copy(k[:], e.IP.To16())
		want[k] = true
	}
	var errs []error
	var k [16]byte
	var v uint32
	var stale [][16]byte
	have := map[[16]byte]bool{}
	it := d.vteps.Iterate()
	for it.Next(&k, &v) {
		have[k] = true
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("iterate peer VTEPs map: %w", err))
	}
	for _, k := range stale {
		if err := d.vteps.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete VTEP %s: %w", net.IP(k[:]), err))
		}
	}
	for k := range want {
		if have[k] {
			continue
		}
		if err := d.vteps.Put(k, uint32(1)); err != nil {
			errs = append(errs, fmt.Errorf("put VTEP %s: %w", net.IP(k[:]), err))
		}
	}
	return errors.Join(errs...)
}

// decapTarget reads what the underlay program needs from the VXLAN device:
// its VTEP address, port, VNI and underlay interface.
func (n *Node) decapTarget(dev netlink.Link) (DecapConfig, netlink.Link, error) {
	var c DecapConfig
	vx, ok := dev.(*netlink.Vxlan)
	if !ok {
		return c, nil, fmt.Errorf("%s is not a VXLAN device", n.Device)
	}
	if vx.SrcAddr == nil || vx.SrcAddr.To4() != nil || vx.VtepDevIndex == 0 {
		return c, nil, fmt.Errorf("%s has no IPv6 local address or underlay device", n.Device)
	}
	copy(c.VTEP[:], vx.SrcAddr.To16())
	c.Port, c.VNI, c.GSO = uint16(vx.Port), uint32(vx.VxlanId), n.Hooks.DecapGSO
	under, err := n.h.LinkByIndex(vx.VtepDevIndex)
	if err != nil {
		return c, nil, fmt.Errorf("underlay of %s (index %d): %w", n.Device, vx.VtepDevIndex, err)
	}
	return c, under, nil
}

// syncDecap keeps the underlay program attached while Hooks.Decap is set,
// and its VTEPs map filled on a peers round (the fdb changes only with
// peers; a pod round must not dump it). It records the underlay's name in
// n.underlay, so syncPods keeps its pin.
func (n *Node) syncDecap(dev netlink.Link, att map[string]int, peers bool) error {
	c, under, err := n.decapTarget(dev)
	if err != nil {
		return err
	}
	if n.decap == nil {
		if n.decap, err = openDecapMaps(n.Dir); err != nil {
			return err
		}
		peers = true
	}
	if peers {
		if err := n.decap.syncVTEPs(n.h, dev); err != nil {
			return err
		}
	}
	name, idx := under.Attrs().Name, under.Attrs().Index
	n.underlay = name
	if att[name] == idx && n.decapCfg == c {
		return nil
	}
	if err := n.attachFromUnderlay(n.decap, name, idx, c); err != nil {
		return err
	}
	att[name], n.decapCfg = idx, c
	n.Log.Info("fast path underlay decap attached", "device", name, "index", idx)
	return nil
}

// DecapStats are the underlay program's counters, summed over CPUs.
type DecapStats struct {
	Decap     uint64 // packets decapsulated and redirected
	GSO       uint64 // of those, GSO skbs (Hooks.DecapGSO)
	AdjustErr uint64 // bpf_skb_adjust_room failures (left to the kernel path)
}

// DecapStats reads the underlay program's counters (zero if it never ran).
func (n *Node) DecapStats() (DecapStats, error) { return DecapStatsIn(n.Dir) }

// DecapStatsIn reads the counters pinned in dir (a host's PinDir), for
// those who watch a daemon's fast path from outside.
func DecapStatsIn(dir string) (DecapStats, error) {
	var st DecapStats
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "vx6_decap_stat"), nil)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("open decap stats in %s: %w", dir, err)
	}
	defer m.Close()
	for k, dst := range map[uint32]*uint64{statDecap: &st.Decap, statGSO: &st.GSO, statAdjustErr: &st.AdjustErr} {
		var vs []uint64
		if err := m.Lookup(k, &vs); err != nil {
			return st, fmt.Errorf("read decap stat %d in %s: %w", k, dir, err)
		}
		for _, v := range vs {
			*dst += v
		}
	}
	return st, nil
}
