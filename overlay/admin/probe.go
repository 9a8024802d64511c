package admin

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
)

// probeResult is one peer's ping through the overlay.
type probeResult struct {
	Target      string  `json:"target"`
	Source      string  `json:"source,omitempty"`
	Sent        int     `json:"sent"`
	Received    int     `json:"received"`
	LossPercent float64 `json:"lossPercent"`
	RTTMinMs    float64 `json:"rttMinMs,omitempty"`
	RTTAvgMs    float64 `json:"rttAvgMs,omitempty"`
	RTTMaxMs    float64 `json:"rttMaxMs,omitempty"`
	Error       string  `json:"error,omitempty"`
}

func (p *probeResult) loss() string {
	if p.Sent == 0 {
		return "error"
	}
	return fmt.Sprintf("%g%%", p.LossPercent)
}

func (p *probeResult) rtt() string {
	if p.Received == 0 {
		return ""
	}
	return fmt.Sprintf("%.3fms", p.RTTAvgMs)
}

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)
	pingRTT    = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/`)
)

// probe pings every peer's gateway, a few peers at a time. The source is
// this node's own gateway when the node bridge holds it, so the replies
// come back through the overlay too; otherwise the kernel picks one (the
// underlay address: replies then return over the underlay).
func (v *statusView) probe(count int) {
	src := ownGateway(v.SubnetV6)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range v.Peers {
		p := &v.Peers[i]
		gw := gatewayOf(p.SubnetV6)
		if gw == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p.Probe = ping(gw, src, count)
		}()
	}
	wg.Wait()
	for _, p := range v.Peers {
		if p.Probe != nil && (p.Probe.Sent == 0 || p.Probe.Received == 0) {
			v.Problems = append(v.Problems, fmt.Sprintf("peer %s: gateway %s does not answer (%s)", p.VTEP, p.Probe.Target, p.Probe.loss()))
		}
	}
}

// ownGateway is this node's gateway (the first address of its IPv6
// subnet) if some interface holds it, else nil.
func ownGateway(subnet string) net.IP {
	gw := gatewayOf(subnet)
	if gw == nil {
		return nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if a.IP.Equal(gw) {
			return gw
		}
	}
	return nil
}

// ping runs iputils ping: raw ICMP sockets need the same privileges as the
// daemon, and ping's summary is what operators already read.
func ping(dst, src net.IP, count int) *probeResult {
	r := &probeResult{Target: dst.String()}
	args := []string{"-6", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1"}
	if src != nil {
		r.Source = src.String()
		args = append(args, "-I", src.String())
	}
	out, err := exec.Command("ping", append(args, dst.String())...).CombinedOutput()
	m := pingCounts.FindSubmatch(out)
	if m == nil {
		r.Error = fmt.Sprintf("ping %s: %v: %s", dst, err, out)
		return r
	}
	r.Sent, _ = strconv.Atoi(string(m[1]))
	r.Received, _ = strconv.Atoi(string(m[2]))
	if r.Sent > 0 {
		r.LossPercent = float64(r.Sent-r.Received) * 100 / float64(r.Sent)
	}
	if m := pingRTT.FindSubmatch(out); m != nil {
		r.RTTMinMs, _ = strconv.ParseFloat(string(m[1]), 64)
		r.RTTAvgMs, _ = strconv.ParseFloat(string(m[2]), 64)
		r.RTTMaxMs, _ = strconv.ParseFloat(string(m[3]), 64)
	}
	return r
}
