package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/vxlan6/vxlan6/datapath/fastpath"
	"github.com/vxlan6/vxlan6/plugins/vxlan6/link"
)

// Helpers for tests of the eBPF fast path (datapath/fastpath).

// ConfigJSONFastPath is ConfigJSON with Backend.FastPath set to mode
// ("auto" or "off").
func ConfigJSONFastPath(dual bool, mode string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(ConfigJSON(dual)), &m)
	m["Backend"].(map[string]any)["FastPath"] = mode
	data, _ := json.Marshal(m)
	return string(data)
}

// FastPathSlowMsg is what vxlan6d logs when a pod stays on the bridge path.
const FastPathSlowMsg = `msg="pod stays on the bridge path"`

// WaitLogPod waits until the host's current daemon has logged msg for c.
func (h *Host) WaitLogPod(msg string, c *Container, timeout time.Duration) string {
	h.Bed.T.Helper()
	var found string
	err := Eventually(timeout, 100*time.Millisecond, func() error {
		for _, line := range strings.Split(h.Daemon().Log(), "\n") {
			if strings.Contains(line, msg) && strings.Contains(line, "pod="+c.IPv6.String()+" ") {
				found = line
				return nil
			}
		}
		return fmt.Errorf("vxlan6d on %s has not logged %s for %s (%s)", h.Name, msg, c.Name, c.IPv6)
	})
	if err != nil {
		h.Bed.T.Fatal(err)
	}
	return found
}

// FastPathPods lists the host's fast-path pod map (nil when the daemon
// does not run the fast path).
func (h *Host) FastPathPods() (map[string]fastpath.Pod, error) {
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		return nil, err
	}
	defer n.Close()
	var pods map[string]fastpath.Pod
	err = n.Do(func(ns.NetNS) error {
		m, err := fastpath.OpenPinnedMaps()
		if err != nil || m == nil {
			return err
		}
		defer m.Close()
		pods, err = m.PodEntries()
		return err
	})
	return pods, err
}

// RemoveFastPathPins removes the host's fast-path pins (programs, maps) from
// the shared bpffs; AddHost registers it to run after the daemons are
// stopped and before the netns goes.
func (h *Host) RemoveFastPathPins() {
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		return
	}
	defer n.Close()
	if err := n.Do(func(ns.NetNS) error { return fastpath.RemoveHost() }); err != nil {
		h.Bed.T.Logf("remove fast-path pins of %s: %v", h.Name, err)
	}
}

// FastPathPeerCount is the number of remote pod subnets in the host's
// fast-path peers map (0 without the fast path).
func (h *Host) FastPathPeerCount() (int, error) {
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		return 0, err
	}
	defer n.Close()
	count := 0
	err = n.Do(func(ns.NetNS) error {
		m, err := fastpath.OpenPinnedMaps()
		if err != nil || m == nil {
			return err
		}
		defer m.Close()
		peers, err := m.PeerEntries()
		count = len(peers)
		return err
	})
	return count, err
}

// WaitFastPathPeers waits until the host's peers map holds at least want
// remote pod subnets (the daemon adds new peers a few seconds after their
// routes).
func (h *Host) WaitFastPathPeers(want int, timeout time.Duration) {
	h.Bed.T.Helper()
	err := Eventually(timeout, 200*time.Millisecond, func() error {
		n, err := h.FastPathPeerCount()
		if err == nil && n < want {
			err = fmt.Errorf("fast-path peers map of %s has %d subnets, want %d", h.Name, n, want)
		}
		return err
	})
	if err != nil {
		h.Bed.T.Fatal(err)
	}
}

// FastPathPodMsg is what vxlan6d logs when it puts a pod on the fast path.
const FastPathPodMsg = `msg="pod on the fast path"`

// WaitFastPath waits until the host's daemon has put container c on the
// fast path.
func (h *Host) WaitFastPath(c *Container, timeout time.Duration) {
	h.Bed.T.Helper()
	h.WaitLogPod(FastPathPodMsg, c, timeout)
}

// HostVethTxPackets is the transmit counter of the host end of c's eth0:
// the bridge path delivers every packet for c through it, the fast path
// (bpf_redirect_peer) hands packets to c's end directly.
func (c *Container) HostVethTxPackets() (uint64, error) {
	_, tx, err := c.Host.LinkPackets(link.HostVethName(c.Name, "eth0"))
	return tx, err
}

// LinkPackets are the receive and transmit packet counters of the host's
// interface name.
func (h *Host) LinkPackets(name string) (rx, tx uint64, err error) {
	out, err := h.Exec("ip", "-j", "-s", "link", "show", "dev", name)
	if err != nil {
		return 0, 0, err
	}
	type counter struct {
		Packets json.Number `json:"packets"`
	}
	var links []struct {
		Stats struct {
			RX counter `json:"rx"`
			TX counter `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, 0, fmt.Errorf("parse ip -j -s link show %s: %v: %s", name, err, out)
	}
	if rx, err = strconv.ParseUint(links[0].Stats.RX.Packets.String(), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("rx packets of %s: %w", name, err)
	}
	if tx, err = strconv.ParseUint(links[0].Stats.TX.Packets.String(), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("tx packets of %s: %w", name, err)
	}
	return rx, tx, nil
}

// RenameFastPathPins moves the host's pin directory (programs, links, maps)
// to that of map version v, as an older vxlan6d whose plugin↔daemon
// contract had that version would have left it: the start of an upgrade.
func (h *Host) RenameFastPathPins(v int) {
	h.Bed.T.Helper()
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		h.Bed.T.Fatal(err)
	}
	defer n.Close()
	err = n.Do(func(ns.NetNS) error {
		dir, err := fastpath.PinDir()
		if err != nil {
			return err
		}
		return os.Rename(dir, filepath.Join(filepath.Dir(dir), fmt.Sprintf("v%d", v)))
	})
	if err != nil {
		h.Bed.T.Fatalf("rename the fast-path pins of %s to version %d: %v", h.Name, v, err)
	}
}

// FastPathVersions lists the map versions pinned for the host (v1, ...).
func (h *Host) FastPathVersions() []string {
	h.Bed.T.Helper()
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		h.Bed.T.Fatal(err)
	}
	defer n.Close()
	var vs []string
	err = n.Do(func(ns.NetNS) error {
		dir, err := fastpath.PinDir()
		if err != nil {
			return err
		}
		ents, err := os.ReadDir(filepath.Dir(dir))
		for _, e := range ents {
			vs = append(vs, e.Name())
		}
		return err
	})
	if err != nil {
		h.Bed.T.Fatalf("list the fast-path pins of %s: %v", h.Name, err)
	}
	return vs
}

// FastPathDecapCount is how many packets the host's underlay program
// (Backend.FastPath "decap") has decapsulated (0 without it).
func (h *Host) FastPathDecapCount() uint64 {
	h.Bed.T.Helper()
	n, err := ns.GetNS(h.NetnsPath())
	if err != nil {
		h.Bed.T.Fatal(err)
	}
	defer n.Close()
	var st fastpath.DecapStats
	err = n.Do(func(ns.NetNS) error {
		dir, err := fastpath.PinDir()
		if err != nil {
			return err
		}
		st, err = fastpath.DecapStatsIn(dir)
		return err
	})
	if err != nil {
		h.Bed.T.Fatalf("read the decap counters of %s: %v", h.Name, err)
	}
	return st.Decap
}
