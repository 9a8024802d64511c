package fastpath

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/vxlan6/vxlan6/internal/testutil"
)

// The underlay program's filter, run with BPF_PROG_TEST_RUN on crafted
// frames: only a VXLAN packet of a known peer VTEP, to this node's VTEP,
// port and VNI, carrying IPv6 for a local pod that is not slow, not GSO, is
// decapsulated and redirected; every other one is left to the kernel
// (TCX_NEXT) unchanged.

const tcActRedirect = 7

var (
	decapVTEP  = net.ParseIP("2001:db8:1::11")
	decapPeer  = net.ParseIP("2001:db8:1::21")
	decapPod   = net.ParseIP("fd10:244:0:1::2")
	decapPodMA = mustMAC("02:00:00:00:01:02")
	decapGwMA  = mustMAC("02:00:00:00:01:01")
)

// vxlanFrame builds outer Ethernet/IPv6/UDP/VXLAN + inner Ethernet/IPv6 +
// an 8-byte ICMPv6 echo; mod changes it before it is returned.
func vxlanFrame(mod func(f []byte)) []byte {
	var b bytes.Buffer
	eth := func(proto uint16) {
		b.Write([]byte{2, 0, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 0x21})
		_ = binary.Write(&b, binary.BigEndian, proto)
	}
	ip6 := func(plen uint16, next byte, src, dst net.IP) {
		b.Write([]byte{0x60, 0, 0, 0})
		_ = binary.Write(&b, binary.BigEndian, plen)
		b.Write([]byte{next, 64})
		b.Write(src.To16())
		b.Write(dst.To16())
	}
	eth(0x86dd)
	ip6(8+8+14+40+8, 17, decapPeer, decapVTEP)
	_ = binary.Write(&b, binary.BigEndian, [4]uint16{40000, 8472, 8 + 8 + 14 + 40 + 8, 0})
	b.Write([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}) // I flag, VNI 1
	eth(0x86dd)
	ip6(8, 58, net.ParseIP("fd10:244:0:2::2"), decapPod)
	b.Write([]byte{128, 0, 0, 0, 0, 1, 0, 1})
	f := b.Bytes()
	if mod != nil {
		mod(f)
	}
	return f
}

func TestUnderlayFilter(t *testing.T) {
	testutil.RequireRoot(t)
	pods, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 16, ValueSize: 24, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer pods.Close()
	vteps, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer vteps.Close()
	stats, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	k, _ := addr16(decapPod)
	if err := pods.Put(k, Pod{Ifindex: 1, MAC: decapPodMA, GwMAC: decapGwMA}); err != nil {
		t.Fatal(err)
	}
	k, _ = addr16(decapPeer)
	if err := vteps.Put(k, uint32(1)); err != nil {
		t.Fatal(err)
	}
	c := DecapConfig{Port: 8472, VNI: 1}
	copy(c.VTEP[:], decapVTEP.To16())
	prog, err := loadProgram("vx6_from_under", fromUnderlayProgram(pods, vteps, stats, c))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer prog.Close()

	run := func(frame []byte, gso uint32) (uint32, []byte) {
		t.Helper()
		var ctx [192]byte
		binary.LittleEndian.PutUint32(ctx[skbGSOSize:], gso)
		out := make([]byte, len(frame)+64)
		ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out, Context: ctx[:]})
		if err != nil {
			t.Fatalf("test run: %v", err)
		}
		return ret, out
	}
	good := vxlanFrame(nil)
	ret, out := run(good, 0)
	if ret != tcActRedirect {
		t.Fatalf("VXLAN frame for a local pod: return %d, want redirect (%d)", int32(ret), tcActRedirect)
	}
	want := append(append(append([]byte{}, decapPodMA[:]...), decapGwMA[:]...), 0x86, 0xdd)
	inner := good[84:]
	if !bytes.Equal(out[:14], want) || !bytes.Equal(out[14+8:14+40], inner[8:40]) || out[14+7] != 63 ||
		!bytes.Equal(out[54:62], inner[40:48]) {
		t.Errorf("decapsulated frame\n%x\nwant Ethernet %x + inner IPv6 (hop limit 63)\n%x", out[:62], want, inner)
	}

	k, _ = addr16(net.ParseIP("fd10:244:0:1::3"))
	if err := pods.Put(k, Pod{Ifindex: 2, Flags: FlagSlow}); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(f []byte){
		"outer not IPv6":      func(f []byte) { f[12], f[13] = 0x08, 0x00 },
		"outer next header":   func(f []byte) { f[outerNext] = 0 }, // hop-by-hop options
		"other VTEP":          func(f []byte) { f[outerDst+15] = 0x12 },
		"unknown peer":        func(f []byte) { f[outerSrc+15] = 0x31 },
		"other port":          func(f []byte) { f[udpOff+3] = 0xb5 }, // 4789
		"I flag clear":        func(f []byte) { f[vxlanOff] = 0 },
		"other VNI":           func(f []byte) { f[vxlanOff+6] = 2 },
		"inner IPv4":          func(f []byte) { f[innerEth+12], f[innerEth+13] = 0x08, 0x00 },
		"inner hop limit 1":   func(f []byte) { f[innerHop] = 1 },
		"pod not on the node": func(f []byte) { f[innerDst+15] = 9 },
		"pod slow":            func(f []byte) { f[innerDst+15] = 3 },
	} {
		frame := vxlanFrame(mod)
		ret, out := run(frame, 0)
		if int32(ret) != tcxNext || !bytes.Equal(out[:len(frame)], frame) {
			t.Errorf("%s: return %d, want TCX_NEXT (%d) and the frame unchanged", name, int32(ret), tcxNext)
		}
	}
	if ret, _ := run(good, 1400); int32(ret) != tcxNext {
		t.Errorf("GSO skb: return %d, want TCX_NEXT", int32(ret))
	}
	if ret, _ := run(good[:100], 0); int32(ret) != tcxNext {
		t.Errorf("truncated frame: return %d, want TCX_NEXT", int32(ret))
	}
	var per []uint64
	if err := stats.Lookup(uint32(statDecap), &per); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	if n != 1 {
		t.Errorf("decap counter %d, want 1", n)
	}
}
