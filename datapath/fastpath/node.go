package fastpath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FlagPending marks a pod the plugin has just added: the plugins after
// vxlan6 in the chain (bandwidth, portmap) may still be setting it up, so it
// stays on the ordinary path until Node.Sync has looked at it.
const FlagPending = 2

// Node keeps one host's fast path in step with the kernel: the peers map
// from the VXLAN device's routes and permanent neighbours, the program on the
// device, and each pod's state (pending → fast, or slow) from its veth's
// qdiscs and the host's NAT rules. It acts on the network namespace current
// when NewNode ran.
type Node struct {
	*Maps
	Device string        // VXLAN device name
	Hooks  Hooks         // what the pod-side program takes
	Tunnel bool          // attach the tunnel-side program to Device
	Grace  time.Duration // a pending pod is judged no earlier than this after ADD
	// NATTargets returns the text of the host's NAT rules; a pod whose
	// address a DNAT rule names is a DNAT target (portmap) and stays slow.
	// nil: NATRules.
	NATTargets func() (string, error)
	Log        *slog.Logger

	h       netlinksafe.Handle
	judged  time.Time // last re-judgement of every pod
	due     bool      // a pod was left pending, or a step failed
	lastDev int       // device index at the last peers sync

	decap    *decapMaps  // opened on the first Sync with Hooks.Decap
	decapCfg DecapConfig // what the attached underlay program compares
	underlay string      // underlay interface carrying it ("" if none)
}

// RejudgeEvery is how often pods already on a path are judged again (a
// qdisc or a DNAT rule may come later); pending ones are judged on every
// Sync.
const RejudgeEvery = 10 * time.Second

// NewNode opens the maps (creating them) and a netlink handle in the current
// network namespace, and loads the tunnel-side program once: pins an
// earlier process left open without privilege and may need nothing
// attached at first, so only a load tells whether new pods can get a
// program (an error wrapping ErrUnsupported says they cannot).
func NewNode(device string) (*Node, error) {
	m, err := OpenMaps()
	if err != nil {
		return nil, err
	}
	prog, err := loadProgram("vx6_from_tun", fromTunnelProgram(m.Pods))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load vx6_from_tun: %w: %w", ErrUnsupported, err)
	}
	prog.Close()
	h, err := netlinksafe.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return &Node{Maps: m, Device: device, Hooks: AllHooks, Tunnel: true, Grace: 2 * time.Second,
		Log: slog.Default(), h: h}, nil
}

// Close releases handles; pins and attachments stay.
func (n *Node) Close() {
	if n.decap != nil {
		n.decap.close()
	}
	n.h.Close()
	n.Maps.Close()
}

// Due reports whether SyncPods has work to do even if no link changed since
// it last ran: a pod was left pending (or a step failed), or a re-judgement
// is due. Otherwise only a link change (a new veth, a veth gone) gives it
// work, so a caller that watches links can skip the round.
func (n *Node) Due() bool { return n.due || time.Since(n.judged) >= RejudgeEvery }

// Sync brings maps and attachments in line with the kernel once.
func (n *Node) Sync() error { return n.sync(true) }

// SyncPods is Sync without the peers map (whose source, the device's routes
// and neighbours, changes only with peers: see WatchPeers).
func (n *Node) SyncPods() error { return n.sync(false) }

func (n *Node) sync(peers bool) error {
	n.due = true // until a round completes without error
	var errs []error
	dev, err := n.h.LinkByName(n.Device)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		dev = nil
	case err != nil:
		return fmt.Errorf("look up %s: %w", n.Device, err)
	}
	att, err := n.Attached()
	if err != nil {
		return err
	}
	// A recreated device has a new index: the peers map must follow at
	// once, or redirects would go to an index that is gone.
	peers = peers || (dev != nil && dev.Attrs().Index != n.lastDev)
	if dev != nil {
		if peers {
			err := n.syncPeers(dev)
			if err == nil {
				n.lastDev = dev.Attrs().Index
			}
			errs = append(errs, err)
		}
		if n.Tunnel && att[n.Device] != dev.Attrs().Index {
			if err := n.AttachFromTunnel(n.Device, dev.Attrs().Index); err != nil {
				errs = append(errs, err)
			} else {
				att[n.Device] = dev.Attrs().Index
				n.Log.Info("fast path attached", "device", n.Device, "index", dev.Attrs().Index)
			}
		}
	}
	n.underlay = ""
	if dev != nil && n.Hooks.Decap {
		errs = append(errs, n.syncDecap(dev, att, peers))
	}
	if _, ok := att[n.Device]; ok && (!n.Tunnel || dev == nil) {
		errs = append(errs, n.Detach(n.Device))
		delete(att, n.Device)
	}
	errs = append(errs, n.syncPods(att))
	err = errors.Join(errs...)
	if err != nil {
		n.due = true // try again on the next round
	}
	return err
}

// syncPeers: every onlink route via the device whose gateway has a
// permanent neighbour is a remote pod subnet.
func (n *Node) syncPeers(dev netlink.Link) error {
	routes, err := n.h.RouteList(dev, unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("list IPv6 routes of %s: %w", n.Device, err)
	}
	neighs, err := n.h.NeighList(dev.Attrs().Index, unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("list IPv6 neighbours of %s: %w", n.Device, err)
	}
	macOf := map[string]net.HardwareAddr{}
	for _, nb := range neighs {
		if nb.State&netlink.NUD_PERMANENT != 0 && len(nb.HardwareAddr) == 6 {
			macOf[nb.IP.String()] = nb.HardwareAddr
		}
	}
	var src [6]byte
	copy(src[:], dev.Attrs().HardwareAddr)
	want := map[string]Peer{}
	nets := map[string]*net.IPNet{}
	for _, r := range routes {
		mac := macOf[r.Gw.String()]
		if r.Dst == nil || r.Gw == nil || mac == nil {
			continue
		}
		p := Peer{Ifindex: uint32(dev.Attrs().Index), SrcMAC: src, MTU: uint32(dev.Attrs().MTU)}
		copy(p.DstMAC[:], mac)
		copy(p.Gw[:], r.Gw.To16())
		want[r.Dst.String()], nets[r.Dst.String()] = p, r.Dst
	}
	have, err := n.PeerEntries()
	if err != nil {
		return err
	}
	var errs []error
	for k, p := range want {
		if have[k] != p {
			errs = append(errs, n.PutPeer(nets[k], p))
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			_, sub, _ := net.ParseCIDR(k)
			errs = append(errs, n.DeletePeer(sub))
		}
	}
	return errors.Join(errs...)
}

// NATRules is the default Node.NATTargets: `nft list ruleset`, which shows
// iptables-nft rules (portmap's default backend on Debian) as well as
// native nftables ones, and, where the legacy ip6tables nat table is in use
// (a host whose iptables is the legacy build: portmap's rules land there,
// unseen by nft), its rules from ip6tables-save.
func NATRules() (string, error) {
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft list ruleset: %w: %s", err, out)
	}
	if !legacyNAT() {
		return string(out), nil
	}
	save := "ip6tables-legacy-save"
	if _, err := exec.LookPath(save); err != nil {
		save = "ip6tables-save"
	}
	legacy, err := exec.Command(save, "-t", "nat").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -t nat: %w: %s", save, err, legacy)
	}
	return string(out) + string(legacy), nil
}

// legacyNAT reports whether the legacy (x_tables) ip6tables nat table
// exists in the calling thread's network namespace.
func legacyNAT() bool {
	b, err := os.ReadFile("/proc/thread-self/net/ip6_tables_names")
	if err != nil {
		return false
	}
	for _, t := range strings.Fields(string(b)) {
		if t == "nat" {
			return true
		}
	}
	return false
}

// dnatTarget reports whether a DNAT rule of the ruleset text names addr:
// replies of a DNATed flow must be reverse-translated by the stack.
// Masquerade rules that name a pod as source do not count: the fast path
// never takes traffic that leaves the cluster network.
func dnatTarget(text, addr string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(strings.ToLower(line), "dnat") && mentions(line, addr) {
			return true
		}
	}
	return false
}

// mentions reports whether text names addr as a whole address (not as the
// prefix of a longer one: fd00::2 is not in fd00::20).
func mentions(text, addr string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], addr)
		if j < 0 {
			return false
		}
		end := i + j + len(addr)
		before := i + j
		okBefore := before == 0 || !isAddrChar(text[before-1])
		okAfter := end == len(text) || !isAddrChar(text[end])
		if okBefore && okAfter {
			return true
		}
		i = before + 1
	}
}

func isAddrChar(c byte) bool {
	return c == ':' || c == '.' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// shapedLinks says why each pod veth must keep the ordinary path: a qdisc
// other than noqueue (the bandwidth plugin's tbf and ingress, an operator's
// clsact filters) that redirected packets would skip.
func (n *Node) shapedLinks() (map[int]string, error) {
	qds, err := n.h.QdiscList(nil)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	out := map[int]string{}
	for _, q := range qds {
		if t := q.Type(); t != "noqueue" {
			out[q.Attrs().LinkIndex] = "qdisc " + t
		}
	}
	return out, nil
}

// evidence is what a round judges pods by: the host's qdiscs and NAT rules,
// each read at most once per round (a failure too: err) and only if some pod
// is judged (most rounds judge none: a veth came or went).
type evidence struct {
	n      *Node
	shaped map[int]string
	nat    *string
	err    error
}

// slowReason says why the pod addr on veth ifindex must keep the ordinary
// path ("" if it need not); ok is false if that cannot be told (e.err).
func (e *evidence) slowReason(addr string, ifindex int) (why string, ok bool) {
	if e.shaped == nil && e.err == nil {
		e.shaped, e.err = e.n.shapedLinks()
	}
	if why := e.shaped[ifindex]; why != "" {
		return why, true
	}
	if e.nat == nil && e.err == nil {
		f := e.n.NATTargets
		if f == nil {
			f = NATRules
		}
		s, err := f()
		e.nat, e.err = &s, err
	}
	if e.err != nil {
		return "", false
	}
	if dnatTarget(*e.nat, addr) {
		return "target of a DNAT rule (portmap hostPort?)", true
	}
	return "", true
}

// syncPods judges pending pods, re-judges the others (a qdisc or a DNAT rule
// may come later), attaches or detaches the pod-side program to match, and
// drops entries and pins whose veth is gone.
func (n *Node) syncPods(att map[string]int) error {
	pods, err := n.PodEntries()
	if err != nil {
		return err
	}
	links, err := n.h.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	byIdx := map[int]netlink.Link{}
	for _, l := range links {
		byIdx[l.Attrs().Index] = l
	}
	ev := &evidence{n: n}
	var errs []error
	now := time.Now()
	rejudge := now.Sub(n.judged) >= RejudgeEvery
	if rejudge {
		n.judged = now
	}
	waiting := false
	keep := map[string]bool{n.Device: true}
	if n.underlay != "" {
		keep[n.underlay] = true // the underlay program (Hooks.Decap)
	}
	for addr, p := range pods {
		l := byIdx[int(p.Ifindex)]
		if l == nil || l.Type() != "veth" {
			errs = append(errs, n.DeletePod(net.ParseIP(addr)))
			continue
		}
		name := l.Attrs().Name
		keep[name] = true
		pending := p.Flags&FlagPending != 0
		if pending && now.Sub(time.Unix(int64(p.Created), 0)) < n.Grace {
			waiting = true
			continue
		}
		if !pending && !rejudge {
			if p.Flags == 0 && (n.Hooks.Local || n.Hooks.Remote) && att[name] != int(p.Ifindex) {
				errs = append(errs, n.judge(addr, p, name, "", att))
			}
			continue
		}
		why, ok := ev.slowReason(addr, int(p.Ifindex))
		if !ok {
			continue // cannot tell: leave it as it is
		}
		errs = append(errs, n.judge(addr, p, name, why, att))
	}
	for name, idx := range att {
		if !keep[name] || idx == 0 {
			errs = append(errs, n.Detach(name))
		}
	}
	err = errors.Join(append(errs, ev.err)...)
	n.due = waiting || err != nil
	return err
}

// judge puts one pod on the fast path (why == "") or keeps it slow.
func (n *Node) judge(addr string, p Pod, name, why string, att map[string]int) error {
	ip := net.ParseIP(addr)
	if why != "" {
		if p.Flags == FlagSlow {
			return nil
		}
		p.Flags = FlagSlow
		err := errors.Join(n.PutPod(ip, p), n.Detach(name))
		n.Log.Info("pod stays on the bridge path", "pod", addr, "veth", name, "reason", why)
		return err
	}
	if (n.Hooks.Local || n.Hooks.Remote) && att[name] != int(p.Ifindex) {
		if err := n.AttachFromPod(name, int(p.Ifindex), n.Hooks); err != nil {
			return err
		}
		att[name] = int(p.Ifindex)
	}
	if p.Flags != 0 {
		p.Flags = 0
		if err := n.PutPod(ip, p); err != nil {
			return err
		}
		n.Log.Info("pod on the fast path", "pod", addr, "veth", name)
	}
	return nil
}

// DetachAll removes every program of this host (the maps stay), e.g. to
// switch to the bridge path or to re-attach with other Hooks on the next Sync.
func (n *Node) DetachAll() error {
	att, err := n.Attached()
	if err != nil {
		return err
	}
	var errs []error
	for name := range att {
		errs = append(errs, n.Detach(name))
	}
	return errors.Join(errs...)
}

// RemoveOtherVersions detaches the programs and removes the maps of other
// Versions of this host (left by an older vxlan6d): call it after the first
// Sync of this version, so pods are never without a program in between.
func (n *Node) RemoveOtherVersions() error {
	parent := filepath.Dir(n.Dir)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return fmt.Errorf("list %s: %w", parent, err)
	}
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(parent, e.Name())
		if dir == n.Dir {
			continue
		}
		links, _ := os.ReadDir(filepath.Join(dir, "links"))
		for _, l := range links {
			// Removing the pin of a link drops its last reference: the
			// kernel detaches the program.
			errs = append(errs, os.Remove(filepath.Join(dir, "links", l.Name())))
		}
		errs = append(errs, os.RemoveAll(dir))
		n.Log.Info("removed fast path of another version", "dir", dir)
	}
	return errors.Join(errs...)
}
