package vxlan

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxlan6/vxlan6/internal/ipnet"
)

// RouteProtocol marks the routes this package installs (rtm_protocol, shown
// by `ip route` as "proto 118"). Reconcile only ever removes routes carrying
// it, so routes made by the kernel or an operator on the device are safe.
const RouteProtocol netlink.RouteProtocol = 118

// Peer is one remote node.
type Peer struct {
	VTEP    net.IP
	MAC     net.HardwareAddr
	Subnets ipnet.Subnets // V4 dual-stack only
}

// String names the peer in errors and logs.
func (p Peer) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "peer %v (mac %v, %v", p.VTEP, p.MAC, p.Subnets.V6)
	if p.Subnets.V4 != nil {
		fmt.Fprintf(&b, ", %v", p.Subnets.V4)
	}
	b.WriteString(")")
	return b.String()
}

// ValidatePeer reports why p cannot be programmed, or nil. The daemon may
// use it to skip a bad lease instead of having Reconcile refuse the set.
func ValidatePeer(p Peer) error {
	_, err := normPeer(p)
	return err
}

// normPeer checks p and returns it with 16-byte VTEP and masked subnets.
func normPeer(p Peer) (Peer, error) {
	if p.VTEP.To16() == nil || p.VTEP.To4() != nil {
		return p, fmt.Errorf("peer VTEP %q is not an IPv6 address", p.VTEP)
	}
	if p.VTEP.IsUnspecified() || p.VTEP.IsMulticast() || p.VTEP.IsLinkLocalUnicast() || p.VTEP.IsLoopback() {
		return p, fmt.Errorf("peer VTEP %v is not a usable unicast address", p.VTEP)
	}
	if err := checkMAC(p.MAC); err != nil {
		return p, fmt.Errorf("peer %v: %w", p.VTEP, err)
	}
	if p.Subnets.V6 == nil {
		return p, fmt.Errorf("peer %v: no IPv6 subnet", p.VTEP)
	}
	s6, err := normNet(p.Subnets.V6, true)
	if err != nil {
		return p, fmt.Errorf("peer %v: IPv6 subnet: %w", p.VTEP, err)
	}
	var s4 *net.IPNet
	if p.Subnets.V4 != nil {
		if s4, err = normNet(p.Subnets.V4, false); err != nil {
			return p, fmt.Errorf("peer %v: IPv4 subnet: %w", p.VTEP, err)
		}
	}
	return Peer{
		VTEP:    append(net.IP(nil), p.VTEP.To16()...),
		MAC:     append(net.HardwareAddr(nil), p.MAC...),
		Subnets: ipnet.Subnets{V6: s6, V4: s4},
	}, nil
}

func normNet(n *net.IPNet, v6 bool) (*net.IPNet, error) {
	ones, bits := n.Mask.Size()
	if v6 {
		if !isIPv6(n.IP) || bits != 128 {
			return nil, fmt.Errorf("%v is not an IPv6 prefix", n)
		}
		return &net.IPNet{IP: n.IP.Mask(n.Mask), Mask: n.Mask}, nil
	}
	ip4 := n.IP.To4()
	if ip4 == nil || (bits != 32 && bits != 128) || (bits == 128 && ones < 96) {
		return nil, fmt.Errorf("%v is not an IPv4 prefix", n)
	}
	if bits == 128 {
		ones -= 96
	}
	mask := net.CIDRMask(ones, 32)
	return &net.IPNet{IP: ip4.Mask(mask), Mask: mask}, nil
}

// The keys below turn addresses into comparable map keys.
func ipKey(ip net.IP) string                          { return string(ip.To16()) }
func fdbKey(mac net.HardwareAddr, vtep net.IP) string { return string(mac) + ipKey(vtep) }

// gateways of a normalised peer: the network address of each subnet is the
// next hop, resolved by a permanent neighbour to the peer's MAC (flannel's
// scheme: no address is needed on the device).
type hop struct {
	dst    *net.IPNet
	gw     net.IP
	metric int
}

func (p Peer) hops() []hop {
	h := []hop{{p.Subnets.V6, p.Subnets.V6.IP, ipv6Metric}}
	if p.Subnets.V4 != nil {
		h = append(h, hop{p.Subnets.V4, p.Subnets.V4.IP, ipv4Metric(p.Subnets.V4)})
	}
	return h
}

// ipv6Metric is the kernel's default for IPv6 routes, stated explicitly so
// that Reconcile can recognise its own routes by (dst, metric).
const ipv6Metric = 1024

// ipv4Metric spreads IPv4 peer routes over many metrics. The kernel shares
// IPv4 route data in a hash (fib_info) that leaves the gateway out: routes
// differing only in gateway all land in one chain and each insert walks it,
// which made 5000 dual-stack peers cost ~140 µs of kernel time per route
// (measured here with ip -batch: 0.73 s system for 5000 routes with one
// metric, 0.19 s with spread metrics). Each peer prefix has exactly one
// route, so the metric value changes no forwarding decision; it is derived
// from the prefix so it is stable across restarts.
func ipv4Metric(dst *net.IPNet) int {
	h := fnv.New32a()
	h.Write(dst.IP.To4())
	h.Write(dst.Mask)
	return 1 + int(h.Sum32()%(1<<16))
}

// peerSet is what has been programmed through this Device, indexed by every
// key a kernel entry is identified by, so that entries another peer took
// over are never removed with the peer that lost them.
type peerSet struct {
	byVTEP   map[string]Peer
	byMAC    map[string]string // MAC → VTEP key
	bySubnet map[string]string // subnet → VTEP key
}

func newPeerSet() *peerSet {
	return &peerSet{byVTEP: map[string]Peer{}, byMAC: map[string]string{}, bySubnet: map[string]string{}}
}

func (s *peerSet) add(p Peer) {
	k := ipKey(p.VTEP)
	s.byVTEP[k] = p
	s.byMAC[string(p.MAC)] = k
	for _, h := range p.hops() {
		s.bySubnet[h.dst.String()] = k
	}
}

func (s *peerSet) remove(p Peer) {
	k := ipKey(p.VTEP)
	old, ok := s.byVTEP[k]
	if !ok {
		return
	}
	delete(s.byVTEP, k)
	if s.byMAC[string(old.MAC)] == k {
		delete(s.byMAC, string(old.MAC))
	}
	for _, h := range old.hops() {
		if s.bySubnet[h.dst.String()] == k {
			delete(s.bySubnet, h.dst.String())
		}
	}
}

// conflicts returns the programmed peers p replaces: the same VTEP, the same
// MAC, or one of the same subnets (a node that moved its VTEP or MAC).
func (s *peerSet) conflicts(p Peer) []Peer {
	keys := []string{ipKey(p.VTEP)}
	if k, ok := s.byMAC[string(p.MAC)]; ok {
		keys = append(keys, k)
	}
	for _, h := range p.hops() {
		if k, ok := s.bySubnet[h.dst.String()]; ok {
			keys = append(keys, k)
		}
	}
	var out []Peer
	seen := map[string]bool{}
	for _, k := range keys {
		if old, ok := s.byVTEP[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, old)
		}
	}
	return out
}

func (d *Device) fdbEntry(mac net.HardwareAddr, vtep net.IP) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    d.Index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		IP:           vtep,
		HardwareAddr: mac,
	}
}

func (d *Device) neighEntry(ip net.IP, mac net.HardwareAddr) *netlink.Neigh {
	fam := unix.AF_INET6
	if ip.To4() != nil {
		fam = unix.AF_INET
		ip = ip.To4()
	}
	return &netlink.Neigh{
		LinkIndex:    d.Index,
		Family:       fam,
		State:        netlink.NUD_PERMANENT,
		Type:         unix.RTN_UNICAST,
		IP:           ip,
		HardwareAddr: mac,
	}
}

func (d *Device) routeEntry(h hop) *netlink.Route {
	return &netlink.Route{
		LinkIndex: d.Index,
		Dst:       h.dst,
		Gw:        h.gw,
		Flags:     int(netlink.FLAG_ONLINK),
		Protocol:  RouteProtocol,
		Priority:  h.metric,
	}
}

// The operations below name what failed and where, as the daemon logs them.
func (d *Device) setFDB(st *state, mac net.HardwareAddr, vtep net.IP) error {
	if err := st.h.NeighSet(d.fdbEntry(mac, vtep)); err != nil {
		return fmt.Errorf("add fdb entry for %v (mac %v) on %s: %w", vtep, mac, d.Name, err)
	}
	return nil
}

func (d *Device) delFDB(st *state, mac net.HardwareAddr, vtep net.IP) error {
	if err := st.h.NeighDel(d.fdbEntry(mac, vtep)); err != nil && !isGone(err) {
		return fmt.Errorf("delete fdb entry for %v (mac %v) on %s: %w", vtep, mac, d.Name, err)
	}
	return nil
}

func (d *Device) setNeigh(st *state, ip net.IP, mac net.HardwareAddr) error {
	if err := st.h.NeighSet(d.neighEntry(ip, mac)); err != nil {
		return fmt.Errorf("add neighbour %v lladdr %v on %s: %w", ip, mac, d.Name, err)
	}
	return nil
}

func (d *Device) delNeigh(st *state, ip net.IP) error {
	if err := st.h.NeighDel(d.neighEntry(ip, nil)); err != nil && !isGone(err) {
		return fmt.Errorf("delete neighbour %v on %s: %w", ip, d.Name, err)
	}
	return nil
}

func (d *Device) setRoute(st *state, h hop) error {
	if err := st.h.RouteReplace(d.routeEntry(h)); err != nil {
		return fmt.Errorf("add route %v via %v on %s: %w", h.dst, h.gw, d.Name, err)
	}
	return nil
}

func (d *Device) delRoute(st *state, r *netlink.Route) error {
	if err := st.h.RouteDel(r); err != nil && !isGone(err) {
		return fmt.Errorf("delete route %v on %s: %w", r.Dst, d.Name, err)
	}
	return nil
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// AddPeer programs (or updates) one peer: permanent neighbour, fdb entry to
// its VTEP, route(s) to its subnet(s) via this device. It costs a constant
// number of netlink calls however many peers exist. A previously added peer
// with the same VTEP, MAC or subnet is replaced, and its entries that p does
// not reuse are removed. On error, Reconcile converges.
func (d *Device) AddPeer(p Peer) error {
	p, err := normPeer(p)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	if p.VTEP.Equal(d.Local) {
		return fmt.Errorf("%s: peer VTEP %v is this device's own local address", d.Name, p.VTEP)
	}
	st, err := d.state()
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()

	if err := d.setFDB(st, p.MAC, p.VTEP); err != nil {
		return err
	}
	for _, h := range p.hops() {
		if err := d.setNeigh(st, h.gw, p.MAC); err != nil {
			return err
		}
		if err := d.setRoute(st, h); err != nil {
			return err
		}
	}
	var errs []error
	for _, old := range st.peers.conflicts(p) {
		errs = append(errs, d.retire(st, old, p)...)
		st.peers.remove(old)
	}
	st.peers.add(p)
	return errors.Join(errs...)
}

// retire removes old's entries that its successor p did not overwrite.
func (d *Device) retire(st *state, old, p Peer) []error {
	var errs []error
	if !slices.Equal(old.MAC, p.MAC) {
		errs = appendErr(errs, d.delFDB(st, old.MAC, old.VTEP))
	}
	newHops := map[string]bool{}
	for _, h := range p.hops() {
		newHops[h.dst.String()] = true
	}
	for _, h := range old.hops() {
		if newHops[h.dst.String()] {
			continue
		}
		errs = appendErr(errs, d.delRoute(st, d.routeEntry(h)))
		errs = appendErr(errs, d.delNeigh(st, h.gw))
	}
	return errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// RemovePeer removes what AddPeer programmed for p (missing entries are fine).
// Entries another added peer has since taken over (same MAC or subnet) stay.
func (d *Device) RemovePeer(p Peer) error {
	p, err := normPeer(p)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	st, err := d.state()
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()

	vk := ipKey(p.VTEP)
	var errs []error
	// The kernel deletes an fdb remote only if MAC and dst both match, so a
	// MAC that moved to another VTEP is safe without asking the cache.
	errs = appendErr(errs, d.delFDB(st, p.MAC, p.VTEP))
	for _, h := range p.hops() {
		if owner, ok := st.peers.bySubnet[h.dst.String()]; ok && owner != vk {
			continue
		}
		errs = appendErr(errs, d.delRoute(st, d.routeEntry(h)))
		errs = appendErr(errs, d.delNeigh(st, h.gw))
	}
	st.peers.remove(p)
	return errors.Join(errs...)
}

// Reconcile makes the device's peers exactly peers: entries no peer backs are
// removed, missing or changed ones added; untouched entries are not rewritten
// (a daemon restart must not disturb working peers). It reads the kernel's
// tables once (five dumps) and then writes only the differences.
//
// The set must be consistent: an invalid peer, one claiming this device's
// VTEP, or two peers sharing a VTEP, MAC or subnet is an error naming them,
// and nothing is changed.
func (d *Device) Reconcile(peers []Peer) error {
	want, err := d.checkPeers(peers)
	if err != nil {
		return err
	}
	st, err := d.state()
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()

	have, err := d.snapshot(st, len(want))
	if err != nil {
		return err
	}

	t := d.sync(st, want, have)

	st.peers = newPeerSet()
	for _, p := range want {
		st.peers.add(p)
	}
	slog.Debug("reconciled vxlan peers", "device", d.Name, "peers", len(want),
		"added", t.added, "removed", t.removed, "kept", t.kept, "errors", t.errs.n)
	return t.errs.err(d.Name)
}

// tally is what a Reconcile run did.
type tally struct {
	added, removed, kept int
	errs                 errList
}

// sync writes the differences between have and want. The lookup maps are
// garbage as soon as their step is done (the wanted ones after the removals,
// the kept ones before Reconcile builds the new peerSet): with thousands of
// peers the add phase makes thousands of netlink calls, and the process's
// peak memory is what the daemon's RSS figure shows.
func (d *Device) sync(st *state, want []Peer, have *kernelState) tally {
	w := wantedEntries(want)
	r := &reconcile{d: d, st: st}
	// Removals first: a peer whose MAC moved must lose its old fdb entry
	// before the kernel would see two MACs for one VTEP anyway.
	r.pruneFDB(have.fdb, w.fdb)
	r.pruneNeigh(have.neigh, w.neigh)
	r.pruneRoutes(have.routes, w.route)
	r.addMissing(want)
	return r.tally
}

// wanted is every entry a peer set needs, keyed as the kernel's entries are
// compared.
type wanted struct {
	fdb   map[string]Peer // fdbKey → peer
	neigh map[string]Peer // gateway → peer
	route map[string]hop  // dst → hop
}

func wantedEntries(want []Peer) wanted {
	nh := len(want)
	if len(want) > 0 && want[0].Subnets.V4 != nil {
		nh *= 2
	}
	w := wanted{
		fdb:   make(map[string]Peer, len(want)),
		neigh: make(map[string]Peer, nh),
		route: make(map[string]hop, nh),
	}
	for _, p := range want {
		w.fdb[fdbKey(p.MAC, p.VTEP)] = p
		for _, h := range p.hops() {
			w.neigh[ipKey(h.gw)] = p
			w.route[h.dst.String()] = h
		}
	}
	return w
}

// reconcile is one sync: the kernel entries found correct (kept, not
// rewritten) and the tally.
type reconcile struct {
	d                       *Device
	st                      *state
	okFDB, okNeigh, okRoute map[string]bool
	tally
}

// pruneFDB removes fdb entries no peer backs and marks the right ones kept.
func (r *reconcile) pruneFDB(have []fdbRec, want map[string]Peer) {
	r.okFDB = make(map[string]bool, len(have))
	for _, n := range have {
		k := fdbKey(n.mac, n.vtep)
		if _, ok := want[k]; ok && !r.okFDB[k] {
			r.okFDB[k] = true
			r.kept++
			continue
		}
		r.errs.add(r.d.delFDB(r.st, n.mac, n.vtep))
		r.removed++
	}
}

// pruneNeigh removes neighbours no peer backs and marks the right ones kept.
func (r *reconcile) pruneNeigh(have []neighRec, want map[string]Peer) {
	r.okNeigh = make(map[string]bool, len(have))
	for _, n := range have {
		k := ipKey(n.ip)
		if p, ok := want[k]; ok {
			if slices.Equal(p.MAC, n.mac) {
				r.okNeigh[k] = true
				r.kept++
			}
			continue // a changed MAC is overwritten by addMissing
		}
		r.errs.add(r.d.delNeigh(r.st, n.ip))
		r.removed++
	}
}

// pruneRoutes removes our routes no peer backs and marks the right ones kept.
func (r *reconcile) pruneRoutes(have []routeRec, want map[string]hop) {
	r.okRoute = make(map[string]bool, len(have))
	for _, rt := range have {
		k := rt.dst.String()
		if h, ok := want[k]; ok && !r.okRoute[k] && rt.priority == h.metric {
			if rt.ok && rt.gw.Equal(h.gw) {
				r.okRoute[k] = true
				r.kept++
			}
			continue // a changed gateway is replaced (atomically) by addMissing
		}
		r.errs.add(r.d.delRoute(r.st, &netlink.Route{LinkIndex: r.d.Index, Dst: rt.dst, Gw: rt.gw,
			Protocol: RouteProtocol, Table: rt.table, Priority: rt.priority}))
		r.removed++
	}
}

// addMissing writes every wanted entry the prune steps did not find correct.
func (r *reconcile) addMissing(want []Peer) {
	for _, p := range want {
		if !r.okFDB[fdbKey(p.MAC, p.VTEP)] {
			r.errs.add(r.d.setFDB(r.st, p.MAC, p.VTEP))
			r.added++
		}
		for _, h := range p.hops() {
			if !r.okNeigh[ipKey(h.gw)] {
				r.errs.add(r.d.setNeigh(r.st, h.gw, p.MAC))
				r.added++
			}
			if !r.okRoute[h.dst.String()] {
				r.errs.add(r.d.setRoute(r.st, h))
				r.added++
			}
		}
	}
}

// checkPeers validates and normalises a full peer set.
func (d *Device) checkPeers(peers []Peer) ([]Peer, error) {
	out := make([]Peer, 0, len(peers))
	owner := map[string]Peer{}
	claim := func(key, what string, p Peer) error {
		if q, ok := owner[key]; ok {
			return fmt.Errorf("%s: %s and %s share %s", d.Name, q, p, what)
		}
		owner[key] = p
		return nil
	}
	for _, p := range peers {
		n, err := normPeer(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		if n.VTEP.Equal(d.Local) {
			return nil, fmt.Errorf("%s: %s claims this device's own VTEP", d.Name, n)
		}
		if err := claim("v"+ipKey(n.VTEP), "a VTEP", n); err != nil {
			return nil, err
		}
		if err := claim("m"+string(n.MAC), "a MAC", n); err != nil {
			return nil, err
		}
		for _, h := range n.hops() {
			if err := claim("s"+h.dst.String(), "a subnet", n); err != nil {
				return nil, err
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// kernelState is what the device holds that looks like ours, kept compact
// (a netlink.Route is ~400 bytes; 10000 of them would dominate the RSS).
type kernelState struct {
	fdb    []fdbRec
	neigh  []neighRec
	routes []routeRec
}

type fdbRec struct {
	mac  net.HardwareAddr
	vtep net.IP
}

type neighRec struct {
	ip  net.IP
	mac net.HardwareAddr
}

type routeRec struct {
	dst      *net.IPNet
	gw       net.IP
	table    int
	priority int
	ok       bool // onlink, single path: the shape AddPeer makes
}

func (d *Device) snapshot(st *state, sizeHint int) (*kernelState, error) {
	ks := &kernelState{
		fdb:    make([]fdbRec, 0, sizeHint),
		neigh:  make([]neighRec, 0, sizeHint),
		routes: make([]routeRec, 0, sizeHint),
	}
	fdb, err := d.listNeigh(st, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	for _, n := range fdb {
		// Peer entries are permanent unicast MAC → VTEP. The kernel's own
		// (all-zeros default destination, multicast addresses of the
		// device) are left alone.
		if n.State&netlink.NUD_PERMANENT == 0 || n.Flags&netlink.NTF_SELF == 0 ||
			n.IP == nil || len(n.HardwareAddr) != 6 || isZeroMAC(n.HardwareAddr) || n.HardwareAddr[0]&1 != 0 {
			continue
		}
		ks.fdb = append(ks.fdb, fdbRec{n.HardwareAddr, n.IP})
	}
	for _, fam := range []int{unix.AF_INET6, unix.AF_INET} {
		ns, err := d.listNeigh(st, fam)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			// Only permanent entries are ours: learned ones (link-local
			// neighbours, stale resolutions) belong to the kernel.
			if n.State&netlink.NUD_PERMANENT != 0 && n.IP != nil {
				ks.neigh = append(ks.neigh, neighRec{n.IP, n.HardwareAddr})
			}
		}
		if err := d.listRoutes(st, fam, ks); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// retryDump runs a dump again while the kernel reports it interrupted (a
// concurrent change), as netlinksafe does for the calls it wraps: neither the
// iterating route dump nor NeighList is among them.
func retryDump(dump func() error) error {
	var err error
	for range 5 {
		if err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return err
}

// listRoutes appends the device's routes carrying RouteProtocol.
func (d *Device) listRoutes(st *state, family int, ks *kernelState) error {
	n := len(ks.routes)
	err := retryDump(func() error {
		ks.routes = ks.routes[:n]
		return st.h.Handle.RouteListFilteredIter(family,
			&netlink.Route{LinkIndex: d.Index, Protocol: RouteProtocol},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL,
			func(r netlink.Route) bool {
				if r.Dst != nil {
					ks.routes = append(ks.routes, routeRec{
						dst: r.Dst, gw: r.Gw, table: r.Table, priority: r.Priority,
						ok: r.Flags&int(netlink.FLAG_ONLINK) != 0 && len(r.MultiPath) == 0,
					})
				}
				return true
			})
	})
	if err != nil {
		return fmt.Errorf("list routes on %s: %w", d.Name, err)
	}
	return nil
}

// listNeigh dumps one family's neighbours of the device.
func (d *Device) listNeigh(st *state, family int) ([]netlink.Neigh, error) {
	var ns []netlink.Neigh
	err := retryDump(func() (err error) {
		ns, err = st.h.NeighList(d.Index, family)
		return err
	})
	if err != nil {
		what := map[int]string{unix.AF_BRIDGE: "fdb", unix.AF_INET6: "IPv6 neighbours", unix.AF_INET: "IPv4 neighbours"}[family]
		return nil, fmt.Errorf("list %s on %s: %w", what, d.Name, err)
	}
	return ns, nil
}

// errList keeps the first few errors of a bulk operation and counts the rest,
// so 5000 failures do not make a 5000-line message.
type errList struct {
	errs []error
	n    int
}

func (e *errList) add(err error) {
	if err == nil {
		return
	}
	e.n++
	if len(e.errs) < 5 {
		e.errs = append(e.errs, err)
	}
}

func (e *errList) err(dev string) error {
	if e.n == 0 {
		return nil
	}
	err := errors.Join(e.errs...)
	if e.n > len(e.errs) {
		return fmt.Errorf("reconcile %s: %d errors, first %d: %w", dev, e.n, len(e.errs), err)
	}
	return err
}
