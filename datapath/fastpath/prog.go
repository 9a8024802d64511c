package fastpath

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The programs are written with cilium/ebpf's asm package, so building them
// needs no clang. They handle only unicast IPv6 without extension-header
// tricks: Ethernet + IPv6 header in the linear data, hop limit above 1, and a
// destination found in the maps. Everything else returns TCX_NEXT, so later
// tc programs and filters (the bandwidth plugin's, an operator's) still run
// and the packet takes the ordinary stack path.

// Offsets into struct __sk_buff and the frame.
const (
	skbLen     = 0
	skbGSOSize = 176
	skbData    = 76
	skbDataEnd = 80

	ethLen     = 14
	ip6Len     = 40
	ethProto   = 12
	ip6Hop     = ethLen + 7
	ip6Dst     = ethLen + 24
	ethIPv6LE  = 0xdd86 // 0x86dd as the little-endian u16 load sees it
	tcxNext    = -1     // TC_ACT_UNSPEC: go on with the next program / the stack
	packetHost = 0      // PACKET_HOST for bpf_skb_change_type
)

// Register use: R6 = ctx, R7 = packet data start, R8 = data end, R9 = target
// ifindex. The destination address is copied to the stack at R10-36..-21 (the
// pods map key) after a 4-byte prefix length at R10-40 (the peers LPM key).
const (
	keyPrefixOff = -40
	keyAddrOff   = -36
	nhOff        = -64 // struct bpf_redir_neigh for bpf_redirect_neigh
)

// loadFrame (re)loads the packet pointers from ctx (R6) into R7 (data) and
// R8 (data end), and jumps to short unless Ethernet + IPv6 headers are in
// the linear data.
func loadFrame(short string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+ip6Len),
		asm.JGT.Reg(asm.R2, asm.R8, short),
	}
}

// parseIPv6 checks the frame, copies the IPv6 destination to the stack keys,
// and jumps to "pass" for anything the fast path does not take.
func parseIPv6() asm.Instructions {
	ins := append(asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}, loadFrame("pass")...)
	ins = append(ins,
		asm.LoadMem(asm.R2, asm.R7, ethProto, asm.Half),
		asm.JNE.Imm(asm.R2, ethIPv6LE, "pass"),
		asm.LoadMem(asm.R2, asm.R7, ip6Hop, asm.Byte),
		asm.JLE.Imm(asm.R2, 1, "pass"),
		asm.StoreImm(asm.RFP, keyPrefixOff, 128, asm.Word),
	)
	for i := int16(0); i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R7, ip6Dst+i, asm.Word),
			asm.StoreMem(asm.RFP, keyAddrOff+i, asm.R2, asm.Word))
	}
	return ins
}

// lookup calls bpf_map_lookup_elem(m, R10+keyOff); the value pointer is in R0.
func lookup(m *ebpf.Map, keyOff int32) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
	}
}

// copyMAC copies 6 bytes from R0+src (the map value) to the frame at dst.
func copyMAC(dst, src int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R0, src, asm.Half),
		asm.StoreMem(asm.R7, dst, asm.R2, asm.Half),
		asm.LoadMem(asm.R2, asm.R0, src+2, asm.Word),
		asm.StoreMem(asm.R7, dst+2, asm.R2, asm.Word),
	}
}

// checkMTU leaves a packet too big for the VXLAN device to the stack, which
// answers with ICMPv6 Packet Too Big. GSO packets pass: they are segmented
// to their gso_size on transmit. (bpf_check_mtu would do this, but it is a
// GPL-only helper.)
func checkMTU() asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R6, skbGSOSize, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "mtu_ok"),
		asm.LoadMem(asm.R2, asm.R6, skbLen, asm.Word),
		asm.Sub.Imm(asm.R2, ethLen),
		asm.LoadMem(asm.R3, asm.R0, peerMTUOff, asm.Word),
		asm.JGT.Reg(asm.R2, asm.R3, "pass"),
		asm.Mov.Imm(asm.R2, 0).WithSymbol("mtu_ok"),
	}
}

func decHopLimit() asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R7, ip6Hop, asm.Byte),
		asm.Sub.Imm(asm.R2, 1),
		asm.StoreMem(asm.R7, ip6Hop, asm.R2, asm.Byte),
	}
}

// redirectPeer marks the packet as ours (it may carry PACKET_OTHERHOST from
// the bridge-less hop) and hands it to the ingress of the peer of R9's veth,
// inside the pod's namespace, skipping the host's stack and backlog.
func redirectPeer() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, packetHost),
		asm.FnSkbChangeType.Call(),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirectPeer.Call(),
		asm.Return(),
	}
}

func pass() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("pass"),
		asm.Return(),
	}
}

// localPod continues after a pods-map lookup: R0 = value or NULL (then jump
// to miss). Pods flagged slow pass; with checkMAC the frame must already be
// addressed to the pod's MAC (a same-subnet frame the bridge would switch),
// else the MACs are rewritten and the hop limit decremented (a routed hop).
func localPod(miss string, checkMAC bool) asm.Instructions {
	ins := asm.Instructions{
		asm.JEq.Imm(asm.R0, 0, miss),
		asm.LoadMem(asm.R2, asm.R0, podFlagsOff, asm.Word),
		asm.JSet.Imm(asm.R2, FlagSlow, "pass"),
		asm.LoadMem(asm.R9, asm.R0, podIfindexOff, asm.Word),
	}
	if checkMAC {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R7, 0, asm.Half),
			asm.LoadMem(asm.R3, asm.R0, podMACOff, asm.Half),
			asm.JNE.Reg(asm.R2, asm.R3, "pass"),
			asm.LoadMem(asm.R2, asm.R7, 2, asm.Word),
			asm.LoadMem(asm.R3, asm.R0, podMACOff+2, asm.Word),
			asm.JNE.Reg(asm.R2, asm.R3, "pass"),
		)
	} else {
		ins = append(ins, copyMAC(0, podMACOff)...)
		ins = append(ins, copyMAC(6, podGwMACOff)...)
		ins = append(ins, decHopLimit()...)
	}
	return append(ins, redirectPeer()...)
}

// fromPodProgram runs on TCX ingress of a pod's host-side veth: traffic for
// a local pod goes straight to it (h.Local), traffic for a remote pod subnet
// straight to the VXLAN device (h.Remote; with h.Neigh through
// bpf_redirect_neigh, which takes the MAC from the gateway's neighbour
// entry, else bpf_redirect with the MACs from the peers map).
func fromPodProgram(pods, peers *ebpf.Map, h Hooks) asm.Instructions {
	ins := parseIPv6()
	if h.Local {
		ins = append(ins, lookup(pods, keyAddrOff)...)
		ins = append(ins, localPod("remote", true)...)
	}
	if !h.Remote {
		if h.Local {
			ins = append(ins, asm.Ja.Label("pass").WithSymbol("remote"))
		}
		return append(ins, pass()...)
	}
	look := lookup(peers, keyPrefixOff)
	look[0] = look[0].WithSymbol("remote")
	ins = append(ins, look...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R9, asm.R0, peerIfindexOff, asm.Word),
	)
	ins = append(ins, checkMTU()...)
	ins = append(ins, decHopLimit()...)
	if h.Neigh {
		ins = append(ins, redirectNeigh()...)
	} else {
		ins = append(ins, copyMAC(0, peerDstMACOff)...)
		ins = append(ins, copyMAC(6, peerSrcMACOff)...)
		ins = append(ins,
			asm.Mov.Reg(asm.R1, asm.R9),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		)
	}
	return append(ins, pass()...)
}

// redirectNeigh calls bpf_redirect_neigh(R9, &{AF_INET6, gw}, 20, 0) with
// the peer's gateway (R0 = peers value) in a struct bpf_redir_neigh on the
// stack.
func redirectNeigh() asm.Instructions {
	ins := asm.Instructions{asm.StoreImm(asm.RFP, nhOff, unix.AF_INET6, asm.Word)}
	for i := int16(0); i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R2, asm.R0, peerGwOff+i, asm.Word),
			asm.StoreMem(asm.RFP, nhOff+4+i, asm.R2, asm.Word))
	}
	return append(ins,
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, nhOff),
		asm.Mov.Imm(asm.R3, 20),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
	)
}

// fromTunnelProgram runs on TCX ingress of the VXLAN device: decapsulated
// traffic for a local pod goes straight into the pod's namespace.
func fromTunnelProgram(pods *ebpf.Map) asm.Instructions {
	ins := parseIPv6()
	ins = append(ins, lookup(pods, keyAddrOff)...)
	ins = append(ins, localPod("pass", false)...)
	return append(ins, pass()...)
}

func loadProgram(name string, ins asm.Instructions) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.SchedCLS,
		Instructions: ins,
		License:      "Apache-2.0",
	})
}
