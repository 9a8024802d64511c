package lease

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf captures a Registry's warnings.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func captureLog(r *Registry) *logBuf {
	buf := &logBuf{}
	r.log = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return buf
}

// TestHostileClaimsHoldNothing: records claiming ::/0, the whole network,
// a wider prefix or a subnet outside the network hold nothing, so a new
// node still gets a subnet of a small network; records with an invalid
// VTEP or MAC, and reservations without VtepMAC, still hold their one
// valid subnet (nothing is ever handed out twice).
func TestHostileClaimsHoldNothing(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(`{"IPv6Network":"fd10:244::/62"}`) // 4 subnets
	p := v.r.LeasesPrefix()
	v.put(p+"2001:db8::a1", rec("2001:db8::a1", "::/0", "", 1))
	v.put(p+"2001:db8::a2", rec("2001:db8::a2", "fd10:244::/62", "", 2))
	v.put(p+"2001:db8::a3", rec("2001:db8::a3", "fd10:244::/63", "", 3))
	v.put(p+"2001:db8::a4", rec("2001:db8::a4", "fd10:999::/64", "", 4))
	v.put(p+"2001:db8::a5", rec("2001:db8::a5", "fd10::/16", "", 5))
	v.put(p+"2001:db8::a6", rec("2001:db8::a6", strings.Repeat("f", 5000), "", 6))
	// Invalid VTEP / MAC, reservation without MAC: each still holds one subnet.
	v.put(p+"bad-vtep", `{"VTEP":"nonsense","IPv6Subnet":"fd10:244::/64","VtepMAC":"02:00:00:00:00:07"}`)
	v.put(p+"2001:db8::a8", `{"VTEP":"2001:db8::a8","IPv6Subnet":"fd10:244:0:1::/64","VtepMAC":"ff:ff:ff:ff:ff:ff"}`)
	v.put(p+"2001:db8::a9", `{"VTEP":"2001:db8::a9","IPv6Subnet":"fd10:244:0:2::/64"}`)

	l := mustAcquire(t, v, cfg, attrs("2001:db8:1::1", 1), time.Minute)
	wantSubnet(t, "new node", l.Subnets.V6, "fd10:244:0:3::/64")
	_, err := v.r.Acquire(v.ctx, cfg, attrs("2001:db8:1::2", 2), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "(4 subnets, 4 leased)") {
		t.Fatalf("second node: err %v, want a full network with 4 of 4 leased", err)
	}
}

// TestHostileLeaseRecovers: a node whose lease expired gets a subnet again
// although a "::/0" record sits in etcd (it used to fail forever with "no
// free subnet").
func TestHostileLeaseRecovers(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	v.put(v.r.LeasesPrefix()+"2001:db8::bad", rec("2001:db8::bad", "::/0", "", 1))
	a := attrs("2001:db8:1::1", 1)
	l := mustAcquire(t, v, cfg, a, time.Minute)
	if _, err := v.cli.Revoke(v.ctx, l.EtcdLease); err != nil {
		t.Fatal(err)
	}
	a.Hint.V6 = l.Subnets.V6
	l2 := mustAcquire(t, v, cfg, a, time.Minute)
	wantSubnet(t, "after expiry", l2.Subnets.V6, l.Subnets.V6.String())
}

// TestPeerVTEPChecks: peers' VTEPs that are site-local, IPv4-mapped or
// inside the pod network are skipped by List and Watch.
func TestPeerVTEPChecks(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	p := v.r.LeasesPrefix()
	v.put(p+"2001:db8::1", rec("2001:db8::1", "fd10:244::/64", "", 1))
	v.put(p+"fec0::1", rec("fec0::1", "fd10:244:0:1::/64", "", 2))
	v.put(p+"1.2.3.4", rec("::ffff:1.2.3.4", "fd10:244:0:2::/64", "", 3))
	v.put(p+"fd10:244:0:9::1", rec("fd10:244:0:9::1", "fd10:244:0:3::/64", "", 4))
	buf := captureLog(v.r)
	snap := v.list(cfg)
	if got := vteps(snap.Leases); got != "2001:db8::1" || snap.Skipped != 3 {
		t.Fatalf("List = %s (skipped %d); want only 2001:db8::1 (skipped 3)", got, snap.Skipped)
	}
	for _, want := range []string{"site-local", "IPv4-mapped", "inside the pod network fd10:244::/48"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("no warning saying %q in:\n%s", want, buf)
		}
	}
}

// TestInvalidRecordWarnedOncePerChange: the periodic List does not repeat a
// warning about a record that did not change; a change warns again, and a
// long field is cut short in the log.
func TestInvalidRecordWarnedOncePerChange(t *testing.T) {
	v := newEnv(t)
	cfg := v.config(cfgV6)
	buf := captureLog(v.r)
	key := v.r.LeasesPrefix() + "2001:db8::5"
	long := strings.Repeat("x", 200)
	v.put(key, fmt.Sprintf(`{"VTEP":"2001:db8::5","IPv6Subnet":"fd10:244:0:5::/64","VtepMAC":%q}`, long))
	for range 3 {
		v.list(cfg)
	}
	if n := strings.Count(buf.String(), "skipping lease record"); n != 1 {
		t.Fatalf("%d warnings after 3 Lists of one unchanged record, want 1:\n%s", n, buf)
	}
	if strings.Contains(buf.String(), long) {
		t.Fatalf("the 200-byte field was logged whole:\n%s", buf)
	}
	v.put(key, `{"VTEP":"2001:db8::5","IPv6Subnet":"fd10:244:0:5::/64","VtepMAC":"nope"}`)
	v.list(cfg)
	v.list(cfg)
	if n := strings.Count(buf.String(), "skipping lease record"); n != 2 {
		t.Fatalf("%d warnings after the record changed once, want 2:\n%s", n, buf)
	}
	// The watch reports a change once, and a later List does not repeat it.
	snap := v.list(cfg)
	ch := v.r.WatchSnapshot(v.ctx, cfg, snap)
	v.put(key, `{"VTEP":"2001:db8::5","IPv6Subnet":"fd10:244:0:5::/64","VtepMAC":"again"}`)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(buf.String(), "skipping lease record") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	v.list(cfg)
	if n := strings.Count(buf.String(), "skipping lease record"); n != 3 {
		t.Fatalf("%d warnings after a watched change and a List, want 3:\n%s", n, buf)
	}
	noMoreEvents(t, ch)
}
