package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vxlan6/vxlan6/internal/testbed"
)

// TestNodeReboot is issue 9's reproduction with the real daemon: dual-stack,
// IPv4 node subnets /28 (13 assignable), 10 pods on host 1. Host 1 then
// "reboots": its daemon is killed, every pod netns (and so every veth) is
// gone, the bridge and the VXLAN device are gone, the subnet file is gone;
// the IPAM dataDir stays. The daemon comes back (same VTEP, so the same
// lease and subnets) and all of the next 10 ADDs succeed and reach a pod on
// host 2. Before, 7 of them failed with "all 13 assignable addresses are
// allocated". With the boot ID unchanged (the runtime-only restart case) the
// leftovers are reclaimed as a last resort instead.
func TestNodeReboot(t *testing.T) {
	t.Parallel()
	for _, newBoot := range []bool{true, false} {
		name := map[bool]string{true: "boot-id-changed", false: "same-boot"}[newBoot]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The boot ID file is the whole bed's (PluginExtra); only host 1
			// has plugin calls after the change, as only host 1 reboots.
			bootFile := filepath.Join(t.TempDir(), "boot_id")
			writeBoot(t, bootFile, "aaaaaaaa-0000-0000-0000-000000000001")
			b := testbed.New(t, testbed.Options{Hosts: 2, ReverseAddrOrder: true,
				PluginExtra: map[string]any{"bootIDFile": bootFile}})
			b.PutConfig(smallV4Config(t))
			b.StartDaemons(readyTimeout, nil)
			h1, h2 := b.Hosts[0], b.Hosts[1]
			peer := h2.AddContainer()
			var pods []*testbed.Container
			for range 10 {
				pods = append(pods, h1.AddContainer())
			}
			if err := waitReach(pods[0].Name, peer.IPv4, meshTimeout); err != nil {
				t.Fatalf("before the reboot: %v", err)
			}
			sf := h1.WaitSubnetFile(readyTimeout)

			h1.Daemon().Kill()
			for _, c := range pods {
				if out, err := exec.Command("ip", "netns", "del", c.Name).CombinedOutput(); err != nil {
					t.Fatalf("ip netns del %s: %v: %s", c.Name, err, out)
				}
			}
			h1.MustExec("ip", "link", "del", h1.Bridge)
			h1.MustExec("ip", "link", "del", testbed.Device)
			if err := os.Remove(h1.SubnetFile); err != nil {
				t.Fatal(err)
			}
			if newBoot {
				writeBoot(t, bootFile, "bbbbbbbb-0000-0000-0000-000000000002")
			}
			h1.StartDaemon().WaitReady(readyTimeout)
			if again := h1.WaitSubnetFile(readyTimeout); again.Subnets.V4.String() != sf.Subnets.V4.String() {
				t.Fatalf("subnet after the restart %s, before %s: the test needs the same lease", again.Subnets.V4, sf.Subnets.V4)
			}

			var after []*testbed.Container
			seen := map[string]bool{}
			for range 10 {
				c := h1.AddContainer() // fails the test if ADD fails
				if !sf.Subnets.V4.Contains(c.IPv4) || seen[c.IPv4.String()] {
					t.Fatalf("%s got %s (outside %s or twice)", c.Name, c.IPv4, sf.Subnets.V4)
				}
				seen[c.IPv4.String()] = true
				after = append(after, c)
			}
			for _, dst := range []net.IP{peer.IPv4, peer.IPv6} {
				if err := waitReach(after[9].Name, dst, meshTimeout); err != nil {
					t.Errorf("after the reboot: %v", err)
				}
			}
		})
	}
}

func writeBoot(t *testing.T, path, id string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// smallV4Config is the dual-stack config with IPv4 node subnets of /28.
func smallV4Config(t *testing.T) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(testbed.ConfigJSON(true)), &m); err != nil {
		t.Fatal(err)
	}
	m["SubnetLen"] = 28
	b, _ := json.Marshal(m)
	return string(b)
}
