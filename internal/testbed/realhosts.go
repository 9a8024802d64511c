package testbed

// Real-host conditions (see ../shared/REALHOSTS.md in the project notes and
// issue 8): an underlay configured by router advertisements (radvd in a
// router namespace, SLAAC addresses, privacy addresses) and hosts whose
// firewall drops forwarded traffic.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxlan6/vxlan6/internal/testbed/topology"
	"github.com/vxlan6/vxlan6/internal/testutil"
)

// RAPrefix is the prefix the router advertises to RA hosts (the switch's own).
const RAPrefix = "2001:db8:1::/64"

// RealOptions shape a bed of hosts that look like production ones.
type RealOptions struct {
	// Options of the bed; its Hosts is ignored (see Hosts below).
	Options
	// Hosts to create at once (more with AddRealHost).
	Hosts int
	// RA: a router netns on the switch runs radvd with a long
	// advertisement interval (one RA at start and in answer to each
	// router solicitation, then one every 10-30 minutes, so a route the
	// kernel deleted is not quietly restored by the next RA during a
	// test). Hosts get a SLAAC address and an RA-learned default route
	// and nothing static.
	RA bool
	// TempAddr: hosts also get privacy (temporary) addresses
	// (use_tempaddr=2 on the uplink before the first RA). RA only.
	TempAddr bool
	// ForwardDrop: `ip6tables -P FORWARD DROP` and `iptables -P FORWARD
	// DROP` on every host, as Docker and firewalld leave it.
	ForwardDrop bool
}

// NewRealHosts builds a bed like New and then o.Hosts hosts with the
// conditions o asks for. Hosts added later with AddRealHost get them too.
func NewRealHosts(t testing.TB, o RealOptions) *Bed {
	t.Helper()
	base := o.Options
	base.Hosts = 0
	b := New(t, base)
	b.real = o
	if o.RA {
		testutil.RequireTool(t, "radvd", "apt-get install radvd")
		b.startRouter()
	}
	for i := 0; i < o.Hosts; i++ {
		b.AddRealHost()
	}
	return b
}

// AddRealHost adds a host with the bed's RealOptions: an RA host (SLAAC
// address as Addr1, its temporary address as Addr2 when TempAddr) or a
// static one as AddHost makes, with the firewall asked for.
func (b *Bed) AddRealHost() *Host {
	b.T.Helper()
	o := b.real
	var h *Host
	if o.RA {
		h = b.addRAHost(o.TempAddr)
	} else {
		h = b.AddHost()
	}
	if o.ForwardDrop {
		h.DropForward()
	}
	return h
}

// startRouter makes the router netns (uplink "r0" on the switch bridge,
// forwarding on, as radvd demands) and starts radvd there.
func (b *Bed) startRouter() {
	b.T.Helper()
	r := b.Name + "r"
	b.AddNetns(r)
	b.MustExec(b.Switch, "ip", "link", "add", "pr", "type", "veth", "peer", "name", "r0", "netns", r)
	b.MustExec(b.Switch, "ip", "link", "set", "pr", "master", topology.SwitchBridge, "up")
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		// radvd sends from the link-local address: usable at once.
		{"sysctl", "-qw", "net.ipv6.conf.r0.accept_dad=0"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "r0", "up"},
		{"ip", "addr", "add", "2001:db8:1::fe/64", "dev", "r0", "nodad"},
	} {
		b.MustExec(r, c...)
	}
	dir := filepath.Join(b.Dir, "radvd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.T.Fatal(err)
	}
	conf := filepath.Join(dir, "radvd.conf")
	// MaxRtrAdvInterval 1800 is radvd's maximum; AdvDefaultLifetime must
	// not be shorter.
	cfg := fmt.Sprintf(`interface r0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 600;
	MaxRtrAdvInterval 1800;
	AdvDefaultLifetime 9000;
	prefix %s { AdvOnLink on; AdvAutonomous on; AdvValidLifetime 86400; AdvPreferredLifetime 14400; };
};
`, RAPrefix)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.T.Fatal(err)
	}
	log := filepath.Join(dir, "radvd.log")
	cmd := exec.Command("nsenter", "--net="+NetnsPath(r), "--", "radvd", "-C", conf, "-p", filepath.Join(dir, "radvd.pid"),
		"-n", "-m", "logfile", "-l", log)
	// Its own process group: radvd forks a privilege-separated child, and
	// Cleanup stops both through the group of the process started here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if out, err := os.Create(filepath.Join(dir, "radvd.out")); err == nil {
		cmd.Stdout, cmd.Stderr = out, out
		defer out.Close()
	}
	if err := cmd.Start(); err != nil {
		b.T.Fatalf("start radvd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.T.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if b.T.Failed() {
			l, _ := os.ReadFile(log)
			b.T.Logf("radvd log:\n%s", Tail(string(l), 4<<10))
		}
	})
	// radvd is up once it sends its first RA; a host that comes up before
	// that gets its answer to a router solicitation instead.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-done:
		l, _ := os.ReadFile(log)
		b.T.Fatalf("radvd exited at once: %s", l)
	default:
	}
}

// addRAHost is AddHost for an RA bed: the uplink has no static address and
// no static route; it waits (bounded) for the SLAAC address to leave DAD and
// for the RA default route.
func (b *Bed) addRAHost(tempAddr bool) *Host {
	b.T.Helper()
	// newHost registers the fast-path pin removal too: the daemon runs the
	// fast path by default, and an RA host's pins would otherwise stay in
	// the shared bpffs.
	h := b.newHost()
	port := topology.SwitchPort(h.ID)
	b.MustExec(b.Switch, "ip", "link", "add", port, "type", "veth", "peer", "name", Uplink, "netns", h.Name)
	b.MustExec(b.Switch, "ip", "link", "set", port, "master", topology.SwitchBridge, "up")
	b.MustExec(h.Name, "ip", "link", "set", "lo", "up")
	// A fresh netns takes RAs (accept_ra 1, forwarding 0), like a host
	// whose kernel does SLAAC.
	if tempAddr {
		b.MustExec(h.Name, "sysctl", "-qw", "net.ipv6.conf."+Uplink+".use_tempaddr=2")
	}
	b.MustExec(h.Name, "ip", "link", "set", Uplink, "up")
	b.Hosts = append(b.Hosts, h)
	err := Eventually(60*time.Second, 100*time.Millisecond, func() error {
		if _, err := h.RADefaultRoute(); err != nil {
			return err
		}
		st, tmp, err := h.SLAACAddrs()
		if err != nil {
			return err
		}
		if tempAddr && tmp == nil {
			return fmt.Errorf("%s: no usable temporary address yet", h.Name)
		}
		h.Addr1, h.Addr2 = st, tmp
		return nil
	})
	if err != nil {
		b.T.Fatalf("RA host %s: %v", h.Name, err)
	}
	b.T.Logf("%s: SLAAC address %s, temporary %v, default route %s", h.Name, h.Addr1, h.Addr2, h.mustRADefault())
	return h
}

func (h *Host) mustRADefault() string { r, _ := h.RADefaultRoute(); return r }

// RADefaultRoute returns the host's RA-learned IPv6 default route (as `ip -6
// route show default proto ra` prints it), or an error when there is none.
func (h *Host) RADefaultRoute() (string, error) {
	out, err := h.Exec("ip", "-6", "route", "show", "default", "proto", "ra")
	if err != nil {
		return "", err
	}
	if s := strings.TrimSpace(out); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%s has no RA default route", h.Name)
}

// SLAACAddrs returns the uplink's usable (not tentative) SLAAC addresses:
// the stable one and the temporary (privacy) one, each nil if absent; an
// error when there is no stable one.
func (h *Host) SLAACAddrs() (stable, temporary net.IP, err error) {
	out, err := h.Exec("ip", "-j", "-6", "addr", "show", "dev", Uplink, "scope", "global")
	if err != nil {
		return nil, nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Dynamic   bool   `json:"dynamic"`
			Temporary bool   `json:"temporary"`
			Tentative bool   `json:"tentative"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, nil, fmt.Errorf("parse ip -j addr: %w: %s", err, out)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			ip := net.ParseIP(a.Local)
			if ip == nil || !a.Dynamic || a.Tentative {
				continue
			}
			if a.Temporary {
				temporary = ip
			} else {
				stable = ip
			}
		}
	}
	if stable == nil {
		return nil, temporary, fmt.Errorf("%s: no usable SLAAC address on %s yet: %s", h.Name, Uplink, strings.TrimSpace(out))
	}
	return stable, temporary, nil
}

// DropForward sets the FORWARD policy of both families to DROP on the host
// (iptables as installed: iptables-nft on Debian 12).
func (h *Host) DropForward() {
	h.Bed.T.Helper()
	h.MustExec("ip6tables", "-w", "-P", "FORWARD", "DROP")
	h.MustExec("iptables", "-w", "-P", "FORWARD", "DROP")
}

// Monitor is a command (e.g. `ip -6 monitor route`) running in a host's
// netns for the length of a test step, its output in a file.
type Monitor struct{ *Proc }

// StartMonitor runs args in the host's netns until Stop (or Cleanup).
func (h *Host) StartMonitor(args ...string) *Monitor {
	h.Bed.T.Helper()
	path := filepath.Join(h.Dir, fmt.Sprintf("monitor-%d.log", time.Now().UnixNano()))
	return &Monitor{StartProc(h.Bed.T, strings.Join(args, " ")+" on "+h.Name, h.Name, path, nil, 0, args...)}
}

// Stop ends the monitor (once) and returns everything it printed.
func (m *Monitor) Stop() string {
	m.Kill()
	return m.Log()
}
