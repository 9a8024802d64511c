// Package vtep chooses the underlay interface and the VTEP address, following
// the VTEP table in DESIGN.md: the operator's choice first, autodetection only
// when nothing was named. It is the reason vxlan6 exists: flannel, given a
// node-public-ipv6 on an IPv6-only host, tunnelled from the interface's first
// listed address instead of the one the operator named.
//
// Choose works in the current network namespace and only ever considers IPv6:
// IPv4 addresses and IPv4 default routes on a dual-stack host are never looked
// at, and no IPv4 underlay is needed.
//
// # The table
//
// Let A be the address named by --public-ipv6, or else by an IPv6 --public-ip,
// or else by Options.Annotation (a flag always wins over the annotation). The
// interface selectors are --iface, --iface-regex and --iface-can-reach.
//
//	A, no selector           underlay = the interface owning A; Local = Public = A.
//	A + a selector           underlay = the selected interface. If it owns A,
//	                         Local = Public = A; otherwise (NAT) Public = A and
//	                         Local = the address the selector chose.
//	--iface ADDR             underlay = the owner of ADDR; Local = Public = ADDR.
//	--iface NAME             underlay = NAME; Local = its first usable address.
//	--iface-regex RE         RE is matched against every usable address (in
//	                         interface-index order, then address order) first; if
//	                         none matches, against interface names (index order).
//	                         A matched address is Local; a matched name gives that
//	                         interface's first usable address. Addresses are
//	                         matched in canonical form (2001:db8::1, RFC 5952),
//	                         unanchored, like flannel.
//	--iface-can-reach D      as `ip -6 route get D`: the route's device, and the
//	                         route's preferred source (Src) as Local when that is a
//	                         usable address; else the device's first usable address.
//	                         Src may live on another interface (a dummy/loopback
//	                         VTEP): it is still Local, the route's device is the
//	                         underlay, because that is where the kernel sends.
//	nothing                  the interface of the IPv6 default route (main table,
//	                         ::/0, lowest metric; equal metrics: lowest ifindex;
//	                         multipath: its first nexthop); Local = its first
//	                         usable address.
//
// Several --iface values, and several --iface-regex values, are tried in
// order; the first that resolves wins and the reasons the earlier ones did not
// are logged. When more than one kind of selector is given they are tried in
// the order --iface, --iface-regex, --iface-can-reach (as flannel does).
// An IPv4 --public-ip is only reported in Choice.PublicIPv4.
//
// # Usable addresses and their order
//
// An address is usable when it has global scope, is not tentative
// (IFA_F_TENTATIVE, which includes optimistic DAD), not deprecated
// (IFA_F_DEPRECATED or a preferred lifetime of 0), not temporary
// (IFA_F_TEMPORARY, the privacy addresses that rotate), not dadfailed, and is
// never link-local. Loopback interfaces are never an underlay.
//
// The kernel lists an interface's newest address first, so its order changes
// with the order addresses were configured and is not stable across reboots.
// "First usable address" therefore means: permanent (static, IFA_F_PERMANENT)
// addresses before dynamic ones (SLAAC, DHCPv6), then the numerically lowest
// address. The result does not depend on the order the addresses were added.
//
// # Named addresses that are not usable
//
// An address the operator names (--public-ipv6, --public-ip, the annotation,
// --iface ADDR) is checked before anything touches the system: malformed, IPv4,
// link-local, loopback, multicast or unspecified are errors naming the value.
// On its interface it must also be in a good state:
//   - dadfailed: an error (another host uses it).
//   - tentative (DAD in progress, e.g. the daemon started right after the
//     address was added): Choose waits up to Options.DADTimeout (default 3s)
//     for DAD to finish, then errors if it is still tentative.
//   - deprecated or temporary: accepted, because the operator said so, with a
//     warning: the kernel no longer picks a deprecated address as the source
//     of new connections by itself, and a temporary one will go away.
//
// A named address on the loopback interface (an anycast-style VTEP) is an
// error without a selector: lo cannot be the underlay. Name the underlay with
// --iface; the address is then advertised (NAT row) unless that interface
// owns it.
//
// # Lists and fallbacks
//
// A value that does not resolve (no such interface, address on no interface,
// no usable address, dadfailed) makes Choose try the next value and log why.
// Two things stop the search instead: an error about the address named by
// --public-ipv6/--public-ip/the annotation (no other interface can fix it),
// and a candidate that is only tentative, which is waited for (DADTimeout)
// before the remaining values are tried.
//
// Every error names the offending value and wraps one of the Err* sentinels.
// Options.Validate runs all the checks that need no system state, so a
// daemon can refuse bad flags before doing anything else; Choose runs it
// first too.
package vtep
