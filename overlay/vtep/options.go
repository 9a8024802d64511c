package vtep

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// plan is Options checked and parsed; nothing in it has touched the system.
type plan struct {
	public    net.IP // the named VTEP address (flag or annotation), nil if none
	publicSrc string // Source value for public
	publicArg string // how public was named, for messages: `--public-ipv6 "2001:db8::1"`
	publicV4  net.IP

	ifaces   []ifaceArg
	regexes  []*regexp.Regexp
	canReach net.IP
}

type ifaceArg struct {
	raw  string
	addr net.IP // nil when raw is an interface name
}

func (p *plan) hasSelector() bool {
	return len(p.ifaces) > 0 || len(p.regexes) > 0 || p.canReach != nil
}

// Validate checks every value the operator gave without looking at the
// system, so the daemon can refuse bad flags before it does anything else.
// Choose calls it first.
func (o Options) Validate() error {
	_, err := o.parse()
	return err
}

func (o Options) parse() (*plan, error) {
	p := &plan{}
	if err := o.parsePublic(p); err != nil {
		return nil, err
	}
	if err := o.parseIfaces(p); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePublic fills the advertised address from --public-ipv6, --public-ip
// and the annotation, in that order of precedence.
func (o Options) parsePublic(p *plan) error {
	if s := strings.TrimSpace(o.PublicIPv6); s != "" {
		ip, err := parseNamedAddr("--public-ipv6", s)
		if err != nil {
			return err
		}
		p.public, p.publicSrc, p.publicArg = ip, sourcePublicIPv6, fmt.Sprintf("--public-ipv6 %q", s)
	}
	if s := strings.TrimSpace(o.PublicIP); s != "" {
		a, err := netip.ParseAddr(s)
		switch {
		case err == nil && a.Is4():
			if !a.IsGlobalUnicast() {
				return fmt.Errorf("--public-ip %q: %w", s, errNotUnicast)
			}
			p.publicV4 = net.IP(a.AsSlice())
		default:
			ip, err := parseNamedAddr("--public-ip", s)
			if err != nil {
				return err
			}
			if p.public == nil {
				p.public, p.publicSrc, p.publicArg = ip, sourcePublicIP, fmt.Sprintf("--public-ip %q", s)
			} else if !p.public.Equal(ip) {
				slog.Warn("vtep: --public-ip ignored, --public-ipv6 wins", "publicIP", s, "publicIPv6", p.public.String())
			}
		}
	}
	if s := strings.TrimSpace(o.Annotation); s != "" {
		if p.public != nil {
			if ip := net.ParseIP(s); ip == nil || !ip.Equal(p.public) {
				slog.Info("vtep: annotation vxlan6.io/public-ipv6 ignored, a flag wins", "annotation", s, "flag", p.publicArg)
			}
		} else {
			ip, err := parseNamedAddr("annotation vxlan6.io/public-ipv6", s)
			if err != nil {
				return err
			}
			p.public, p.publicSrc, p.publicArg = ip, sourceAnnotation, fmt.Sprintf("annotation vxlan6.io/public-ipv6 %q", s)
		}
	}
	return nil
}

// parseIfaces fills the interface selectors: --iface, --iface-regex,
// --iface-can-reach.
func (o Options) parseIfaces(p *plan) error {
	for _, v := range o.Iface {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			arg, err := parseIfaceArg(s)
			if err != nil {
				return err
			}
			p.ifaces = append(p.ifaces, arg)
		}
	}
	for _, s := range o.IfaceRegex {
		if s == "" {
			continue
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("--iface-regex %q: %w: %w", s, errBadRegex, err)
		}
		p.regexes = append(p.regexes, re)
	}
	if s := strings.TrimSpace(o.IfaceCanReach); s != "" {
		ip, err := parseNamedAddr("--iface-can-reach", s)
		if err != nil {
			return err
		}
		p.canReach = ip
	}
	return nil
}

// parseIfaceArg tells an address from an interface name: Linux forbids ':'
// in interface names, and an IPv4 literal is rejected as an address rather
// than looked up as a name, so the operator learns the real mistake.
func parseIfaceArg(s string) (ifaceArg, error) {
	if strings.Contains(s, ":") || net.ParseIP(s) != nil {
		ip, err := parseNamedAddr("--iface", s)
		if err != nil {
			return ifaceArg{}, err
		}
		return ifaceArg{raw: s, addr: ip}, nil
	}
	// The kernel's dev_valid_name: at most 15 bytes, no '/', no whitespace.
	if len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/ \t\n\r") {
		return ifaceArg{}, fmt.Errorf("--iface %q: %w", s, errBadIfaceName)
	}
	return ifaceArg{raw: s}, nil
}

// parseNamedAddr checks an address the operator named for use as (or to
// reach) a VTEP. what is the flag or annotation, for the message.
func parseNamedAddr(what, s string) (net.IP, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if strings.Contains(s, "/") {
			return nil, fmt.Errorf("%s %q: %w address: want a bare address, not a prefix", what, s, errMalformed)
		}
		return nil, fmt.Errorf("%s %q: %w IPv6 address", what, s, errMalformed)
	}
	switch {
	case a.Is4() || a.Is4In6():
		return nil, fmt.Errorf("%s %q: %w", what, s, errNotIPv6)
	case a.IsLinkLocalUnicast():
		return nil, fmt.Errorf("%s %q: %w", what, s, errLinkLocal)
	case a.Zone() != "":
		return nil, fmt.Errorf("%s %q: %w IPv6 address: a zone is only meaningful for link-local addresses", what, s, errMalformed)
	case a.IsLoopback() || a.IsMulticast() || a.IsUnspecified():
		return nil, fmt.Errorf("%s %q: %w", what, s, errNotUnicast)
	}
	return net.IP(a.AsSlice()), nil
}
