package fastpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Hooks choose what the program on a pod's veth takes; the benchmark
// measures each alone.
type Hooks struct {
	Local  bool // pod → pod on this host: bpf_redirect_peer
	Remote bool // pod → remote pod subnet: bpf_redirect to the VXLAN device
	Neigh  bool // Remote with bpf_redirect_neigh instead (measured, not the default)
	// Decap: decapsulate VXLAN for local pods on the underlay's TCX
	// ingress (a measured prototype; not in AllHooks, the daemon never
	// sets it). Node only.
	Decap bool
	// DecapGSO: Decap takes GSO skbs too (an experiment, unsafe for pods
	// that forward: see DecapConfig.GSO).
	DecapGSO bool
}

// AllHooks is the normal configuration.
var AllHooks = Hooks{Local: true, Remote: true}

// ErrUnsupported wraps every failure that means "this kernel cannot run the
// fast path" (no BPF, no TCX, missing helpers): callers fall back to the
// bridge path.
var ErrUnsupported = errors.New("fast path unsupported on this kernel")

// linkPin is where the link of ifname is pinned. bpffs refuses names with a
// dot; interface names cannot hold '%' (the kernel reads it as a template),
// so it stands in for the dot.
func (m *Maps) linkPin(ifname string) string {
	return filepath.Join(m.Dir, "links", strings.ReplaceAll(ifname, ".", "%"))
}

// AttachFromPod attaches the pod-side program to TCX ingress of the host end
// of a pod's veth (ifname/ifindex), pinned so it outlives this process.
func (m *Maps) AttachFromPod(ifname string, ifindex int, h Hooks) error {
	return m.attach("vx6_from_pod", fromPodProgram(m.Pods, m.Peers, h), ifname, ifindex)
}

// AttachFromTunnel attaches the tunnel-side program to TCX ingress of the
// VXLAN device.
func (m *Maps) AttachFromTunnel(ifname string, ifindex int) error {
	return m.attach("vx6_from_tun", fromTunnelProgram(m.Pods), ifname, ifindex)
}

// attach loads the program and attaches it, replacing what this package
// attached there before (a repeated ADD, a new version of the program) in
// one step, so the interface is never without a program in between.
func (m *Maps) attach(progName string, ins asm.Instructions, ifname string, ifindex int) error {
	prog, err := loadProgram(progName, ins)
	if err != nil {
		return fmt.Errorf("load %s for %s: %w: %w", progName, ifname, ErrUnsupported, err)
	}
	defer prog.Close()
	pin := m.linkPin(ifname)
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		defer old.Close()
		if info, ierr := old.Info(); ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
			if err := old.Update(prog); err != nil {
				return fmt.Errorf("replace %s on %s: %w", progName, ifname, err)
			}
			return nil
		}
		// A stale pin: the interface went and its index was reused.
		_ = old.Unpin()
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach %s to TCX ingress of %s (index %d): %w: %w", progName, ifname, ifindex, ErrUnsupported, err)
	}
	defer l.Close()
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(pin), err)
	}
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin link of %s at %s: %w", ifname, pin, err)
	}
	return nil
}

// Detach removes the program this package attached to ifname (none is fine).
func (m *Maps) Detach(ifname string) error {
	pin := m.linkPin(ifname)
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", pin, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", pin, err)
	}
	return nil
}

// Attached lists the interfaces with a pinned program, by name, with the
// ifindex the link is attached to (0: the interface is gone).
func (m *Maps) Attached() (map[string]int, error) {
	ents, err := os.ReadDir(filepath.Join(m.Dir, "links"))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned links in %s: %w", m.Dir, err)
	}
	out := map[string]int{}
	for _, e := range ents {
		l, err := link.LoadPinnedLink(filepath.Join(m.Dir, "links", e.Name()), nil)
		if err != nil {
			continue
		}
		idx := 0
		if info, err := l.Info(); err == nil && info.TCX() != nil {
			idx = int(info.TCX().Ifindex)
		}
		l.Close()
		out[strings.ReplaceAll(e.Name(), "%", ".")] = idx
	}
	return out, nil
}

// Remove detaches every program of this host and removes its pinned maps,
// of every Version (the host's network goes away, or a test ends): unlinking
// a link's pin drops its last reference, so the kernel detaches the program.
func (m *Maps) Remove() error {
	if err := os.RemoveAll(filepath.Dir(m.Dir)); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Dir(m.Dir), err)
	}
	return nil
}
