package vtep

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dadPoll is how often a tentative address is looked at again.
const dadPoll = 100 * time.Millisecond

// choose resolves p against the host load returns, waiting (bounded) while
// the only obstacle is an address whose DAD has not finished yet.
func choose(p *plan, dadTimeout time.Duration, load func() (*host, error)) (*Choice, error) {
	if dadTimeout == 0 {
		dadTimeout = DefaultDADTimeout
	}
	deadline := time.Now().Add(dadTimeout)
	for waited := false; ; {
		h, err := load()
		if err != nil {
			return nil, err
		}
		final := dadTimeout < 0 || !time.Now().Before(deadline)
		r := &resolver{p: p, h: h, final: final}
		c, err := r.resolve()
		if err == nil || final || !errors.Is(err, errTentative) {
			if err == nil {
				logChoice(c)
			}
			return c, err
		}
		if !waited {
			slog.Info("vtep: waiting for duplicate address detection", "reason", err.Error(), "timeout", dadTimeout)
			waited = true
		}
		time.Sleep(min(dadPoll, time.Until(deadline)))
	}
}

func logChoice(c *Choice) {
	args := []any{"interface", c.IfName, "ifindex", c.IfIndex, "mtu", c.MTU,
		"local", c.Local.String(), "public", c.Public.String(), "source", c.Source,
		"operatorChosen", c.OperatorChosen}
	if c.PublicIPv4 != nil {
		args = append(args, "publicIPv4", c.PublicIPv4.String())
	}
	if c.NAT() {
		args = append(args, "nat", true)
	}
	slog.Debug("vtep: chosen", args...)
}

// resolver applies the table to one host snapshot. In a non-final pass a
// tentative address stops the search with errTentative so that choose waits
// for it; in the final pass it is just one more reason a candidate failed, so
// later --iface values may still win.
type resolver struct {
	p     *plan
	h     *host
	final bool
}

// candidate is an interface some selector proposes, with the address the
// selector itself pinned (nil: the interface's first usable address).
type candidate struct {
	link   netlink.Link
	addr   net.IP
	source string
	byAddr bool   // an address was named literally (--iface ADDR)
	what   string // the selector, for messages: `--iface "eth0"`
}

// reasons collects why candidates failed; its message is one line.
type reasons []error

func (rs reasons) Error() string {
	s := make([]string, len(rs))
	for i, e := range rs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (rs reasons) Unwrap() []error { return rs }

func (rs reasons) err() error {
	switch len(rs) {
	case 0:
		return nil
	case 1:
		return rs[0]
	}
	return rs
}

// fatal marks an error that must end the search instead of trying the next
// candidate: it concerns the named public address, which no other candidate
// can fix.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

func (r *resolver) resolve() (*Choice, error) {
	p := r.p
	var (
		c   *Choice
		err error
	)
	switch {
	case p.hasSelector():
		c, err = r.selectors()
	case p.public != nil:
		c, err = r.byPublicOwner()
	default:
		c, err = r.defaultRoute()
	}
	if err != nil {
		var f fatal
		if errors.As(err, &f) {
			return nil, f.error
		}
		return nil, err
	}
	c.PublicIPv4 = p.publicV4
	return c, nil
}

// byPublicOwner: A with no selector; the interface owning A is the underlay.
func (r *resolver) byPublicOwner() (*Choice, error) {
	p := r.p
	owners := r.h.owners(p.public)
	if len(owners) == 0 {
		return nil, fmt.Errorf("%s: %w in this network namespace; add it to the underlay interface, or pass --iface to advertise it as a NAT public address", p.publicArg, errNotOwned)
	}
	l := owners[0]
	if len(owners) > 1 {
		slog.Warn("vtep: address is on several interfaces, using the lowest ifindex", "address", p.public.String(), "interface", l.Attrs().Name)
	}
	if isLoopback(l) {
		return nil, fmt.Errorf("%s: on %s: %w; pass --iface to name the underlay", p.publicArg, l.Attrs().Name, errLoopback)
	}
	if err := r.checkNamed(p.publicArg, l, p.public); err != nil {
		return nil, err
	}
	return r.choice(l, p.public, p.public, p.publicSrc, true), nil
}

// checkNamed checks the state of a named address on link l.
func (r *resolver) checkNamed(what string, l netlink.Link, ip net.IP) error {
	a, _ := r.h.addrOn(l.Attrs().Index, ip)
	warn, err := namedState(a)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", what, l.Attrs().Name, err)
	}
	if warn != "" {
		slog.Warn("vtep: named address is "+warn, "address", ip.String(), "interface", l.Attrs().Name, "namedBy", what)
	}
	return nil
}

func (r *resolver) choice(l netlink.Link, local, public net.IP, source string, byAddr bool) *Choice {
	at := l.Attrs()
	if at.Flags&net.FlagUp == 0 {
		slog.Warn("vtep: underlay interface is down", "interface", at.Name)
	}
	return &Choice{
		IfName: at.Name, IfIndex: at.Index, MTU: at.MTU,
		Local: local, Public: public, Source: source, OperatorChosen: byAddr,
	}
}

// finish turns a candidate into a Choice, applying the named public address
// if there is one (the NAT rule).
func (r *resolver) finish(c candidate) (*Choice, error) {
	p := r.p
	idx := c.link.Attrs().Index
	if p.public != nil {
		if _, ok := r.h.addrOn(idx, p.public); ok {
			if err := r.checkNamed(p.publicArg, c.link, p.public); err != nil {
				return nil, fatal{err}
			}
			return r.choice(c.link, p.public, p.public, p.publicSrc, true), nil
		}
	}
	local := c.addr
	if local == nil {
		var err error
		if local, err = r.firstUsable(c.link); err != nil {
			return nil, fmt.Errorf("%s: %w", c.what, err)
		}
	}
	if p.public != nil {
		slog.Info("vtep: named address is not on the underlay interface: advertising it, tunnelling from the interface's address (NAT)",
			"vtep", p.public.String(), "namedBy", p.publicArg, "interface", c.link.Attrs().Name, "local", local.String())
		return r.choice(c.link, local, p.public, p.publicSrc, true), nil
	}
	return r.choice(c.link, local, local, c.source, c.byAddr), nil
}

// firstUsable is the interface's first usable address in the documented
// order. With none, it says why for each address, and asks to wait when one
// is only tentative.
func (r *resolver) firstUsable(l netlink.Link) (net.IP, error) {
	addrs := r.h.addrs[l.Attrs().Index]
	if u := UsableAddrs(addrs); len(u) > 0 {
		return u[0].IP, nil
	}
	var why []string
	tentative := false
	for _, a := range addrs {
		reason := Unusable(a)
		why = append(why, a.IP.String()+" "+reason)
		tentative = tentative || reason == "tentative"
	}
	detail := "it has no IPv6 address"
	if len(why) > 0 {
		detail = "its IPv6 addresses: " + strings.Join(why, ", ")
	}
	if tentative && !r.final {
		return nil, fmt.Errorf("interface %s: %w (%s)", l.Attrs().Name, errTentative, detail)
	}
	return nil, fmt.Errorf("interface %s: %w (%s)", l.Attrs().Name, errNoUsableAddr, detail)
}

// selectors tries --iface, then --iface-regex, then --iface-can-reach; the
// first candidate that yields a Choice wins.
func (r *resolver) selectors() (*Choice, error) {
	var why reasons
	try := func(c candidate) (*Choice, error) {
		ch, err := r.finish(c)
		if err != nil {
			why = append(why, err)
		}
		return ch, err
	}
	stop := func(err error) bool {
		var f fatal
		return errors.As(err, &f) || !r.final && errors.Is(err, errTentative)
	}

	for _, a := range r.p.ifaces {
		c, err := r.ifaceCandidate(a)
		if err == nil {
			var ch *Choice
			if ch, err = try(c); err == nil {
				return ch, nil
			}
		} else {
			why = append(why, err)
		}
		if stop(err) {
			return nil, err
		}
		slog.Info("vtep: --iface value does not resolve", "value", a.raw, "reason", err.Error())
	}

	for _, re := range r.p.regexes {
		cands := r.regexCandidates(re)
		if len(cands) == 0 {
			why = append(why, fmt.Errorf("--iface-regex %q: %w", re.String(), errNoMatch))
			continue
		}
		for _, c := range cands {
			ch, err := try(c)
			if err == nil {
				return ch, nil
			}
			if stop(err) {
				return nil, err
			}
		}
	}

	if r.p.canReach != nil {
		c, err := r.canReachCandidate()
		if err != nil {
			why = append(why, err)
		} else if ch, err := try(c); err == nil {
			return ch, nil
		} else if stop(err) {
			return nil, err
		}
	}
	return nil, why.err()
}

func (r *resolver) ifaceCandidate(a ifaceArg) (candidate, error) {
	what := fmt.Sprintf("--iface %q", a.raw)
	if a.addr == nil {
		l := r.h.linkByName(a.raw)
		if l == nil {
			return candidate{}, fmt.Errorf("%s: %w", what, errNoSuchIface)
		}
		if isLoopback(l) {
			return candidate{}, fmt.Errorf("%s: %w", what, errLoopback)
		}
		return candidate{link: l, source: sourceIface, what: what}, nil
	}
	owners := r.h.owners(a.addr)
	if len(owners) == 0 {
		return candidate{}, fmt.Errorf("%s: %w in this network namespace", what, errNotOwned)
	}
	l := owners[0]
	if isLoopback(l) {
		return candidate{}, fmt.Errorf("%s: on %s: %w", what, l.Attrs().Name, errLoopback)
	}
	if err := r.checkNamed(what, l, a.addr); err != nil {
		return candidate{}, err
	}
	return candidate{link: l, addr: a.addr, source: sourceIfaceAddress, byAddr: true, what: what}, nil
}

// regexCandidates: every usable address matching re (interfaces by ifindex,
// addresses in the stable order), then every interface whose name matches.
func (r *resolver) regexCandidates(re *regexp.Regexp) []candidate {
	what := fmt.Sprintf("--iface-regex %q", re.String())
	var out []candidate
	for _, l := range r.h.links {
		if isLoopback(l) {
			continue
		}
		for _, a := range UsableAddrs(r.h.addrs[l.Attrs().Index]) {
			if re.MatchString(a.IP.String()) {
				out = append(out, candidate{link: l, addr: a.IP, source: sourceIfaceRegex, what: what})
			}
		}
	}
	for _, l := range r.h.links {
		if !isLoopback(l) && re.MatchString(l.Attrs().Name) {
			out = append(out, candidate{link: l, source: sourceIfaceRegex, what: what})
		}
	}
	return out
}

// canReachCandidate is `ip -6 route get D`: the route's device and, when it
// is usable, its preferred source.
func (r *resolver) canReachCandidate() (candidate, error) {
	d := r.p.canReach
	what := fmt.Sprintf("--iface-can-reach %q", d.String())
	// Checked on the snapshot as well as by the route type: the kernel adds
	// the local route of a new address asynchronously.
	if owners := r.h.owners(d); len(owners) > 0 {
		return candidate{}, fmt.Errorf("%s: %w (on %s)", what, errLocalDest, owners[0].Attrs().Name)
	}
	routes, err := r.h.routeGet(d)
	if err != nil {
		return candidate{}, fmt.Errorf("%s: %w: %w", what, errNoRoute, err)
	}
	if len(routes) == 0 {
		return candidate{}, fmt.Errorf("%s: %w", what, errNoRoute)
	}
	rt := routes[0]
	l := r.h.linkByIndex(rt.LinkIndex)
	if l == nil {
		return candidate{}, fmt.Errorf("%s: %w: route via unknown ifindex %d", what, errNoRoute, rt.LinkIndex)
	}
	if isLoopback(l) || rt.Type == unix.RTN_LOCAL {
		return candidate{}, fmt.Errorf("%s: %w (routed to %s)", what, errLocalDest, l.Attrs().Name)
	}
	c := candidate{link: l, source: sourceCanReach, what: what}
	if rt.Src != nil {
		reason := "on no interface"
		if owners := r.h.owners(rt.Src); len(owners) > 0 {
			a, _ := r.h.addrOn(owners[0].Attrs().Index, rt.Src)
			reason = Unusable(a)
		}
		if reason == "" {
			c.addr = rt.Src
		} else {
			slog.Info("vtep: route's preferred source is not usable, using the interface's first usable address",
				"destination", d.String(), "src", rt.Src.String(), "reason", reason, "interface", l.Attrs().Name)
		}
	}
	return c, nil
}

// defaultRoute: nothing was named; the IPv6 default route's interface.
func (r *resolver) defaultRoute() (*Choice, error) {
	routes, err := r.h.defaultRoutes()
	if err != nil {
		return nil, err
	}
	type dr struct {
		link   netlink.Link
		metric int
	}
	var drs []dr
	for _, rt := range routes {
		if !isDefault(rt) || rt.Type != unix.RTN_UNICAST {
			continue
		}
		idx := rt.LinkIndex
		if idx == 0 && len(rt.MultiPath) > 0 {
			idx = rt.MultiPath[0].LinkIndex
		}
		l := r.h.linkByIndex(idx)
		if l == nil || isLoopback(l) {
			continue
		}
		drs = append(drs, dr{l, rt.Priority})
	}
	if len(drs) == 0 {
		return nil, errNoDefaultRoute
	}
	slices.SortStableFunc(drs, func(a, b dr) int {
		if a.metric != b.metric {
			return a.metric - b.metric
		}
		return a.link.Attrs().Index - b.link.Attrs().Index
	})
	l := drs[0].link
	ch, err := r.finish(candidate{link: l, source: sourceDefaultRoute, what: "IPv6 default route via " + l.Attrs().Name})
	if err != nil {
		return nil, fmt.Errorf("%w; pass --iface or --public-ipv6 to name the underlay", err)
	}
	return ch, nil
}

func isDefault(rt netlink.Route) bool {
	if rt.Dst == nil {
		return true
	}
	ones, _ := rt.Dst.Mask.Size()
	return ones == 0 && rt.Dst.IP.IsUnspecified()
}
