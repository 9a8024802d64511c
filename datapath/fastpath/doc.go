// Package fastpath is vxlan6's eBPF data path: tc programs (TCX ingress)
// that move pod traffic past the node bridge and the second trip through
// the host's stack.
//
//   - On the host end of each pod's veth: traffic for another pod on this host
//     goes straight into that pod with bpf_redirect_peer; traffic for a remote
//     pod subnet gets the remote VTEP's MAC and goes straight to the VXLAN
//     device with bpf_redirect.
//   - On the VXLAN device: decapsulated traffic for a local pod goes straight
//     into the pod's namespace with bpf_redirect_peer.
//   - Opt-in (Hooks.Decap; the daemon sets it for Backend.FastPath "decap"):
//     on the underlay interface, non-GSO VXLAN from a known peer VTEP for a
//     local pod is decapsulated in BPF and goes straight into the pod,
//     skipping ip6_rcv, netfilter, the UDP socket and vxlan_rcv (decap.go).
//
// State is two maps pinned per host (network namespace) and per Version
// under /sys/fs/bpf/vxlan6/netns<cookie>/v<Version>/: local pods by address
// (host veth ifindex, MACs, flags) and remote pod subnets (LPM trie). The
// TCX links are pinned beside them, so programs stay attached when the
// plugin or the daemon exits or restarts.
package fastpath
