package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics is the daemon's state as shown on /metrics (Prometheus text
// format, written by hand: a handful of series do not justify a module) and
// /healthz.
type metrics struct {
	mu             sync.Mutex
	vtepAddr       string
	vtepLocal      string
	vtepSource     string
	vtepIface      string
	operatorChosen bool
	leaseTTL       time.Duration
	leaseSubnetV6  string
	leaseSubnetV4  string
	peers          int
	reconciles     uint64
	// periodicResyncs counts self-heals that read etcd (--resync-interval
	// and the early retries after a failed data-path write).
	periodicResyncs uint64
	watchEvents     map[string]uint64
	errors          map[string]uint64
	// readiness: all three must hold for /healthz to say 200.
	haveLease, haveDevice, haveSubnetFile bool
	// lostSubnet is the previous subnet(s) the node did not get back; set,
	// the daemon is not ready.
	lostSubnet string
	// configProblem: why the network config in etcd is not the one in use
	// (not ready while set).
	configProblem string
}

func newMetrics(ttl time.Duration) *metrics {
	return &metrics{leaseTTL: ttl, watchEvents: map[string]uint64{}, errors: map[string]uint64{}}
}

func (m *metrics) update(f func(m *metrics)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *metrics) incError(op string) {
	m.update(func(m *metrics) { m.errors[op]++ })
}

func (m *metrics) ready() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []string
	if !m.haveLease {
		missing = append(missing, "lease")
	}
	if !m.haveDevice {
		missing = append(missing, "vxlan device")
	}
	if !m.haveSubnetFile {
		missing = append(missing, "subnet file")
	}
	if m.lostSubnet != "" {
		missing = append(missing, "the previous subnet "+m.lostSubnet+" (held by another node; containers using it are cut off)")
	}
	if m.configProblem != "" {
		missing = append(missing, "network config in use ("+m.configProblem+")")
	}
	return len(missing) == 0, strings.Join(missing, ", ")
}

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	fmt.Fprintf(w, "# HELP vxlan6d_vtep_info The VTEP in use: advertised address, device local address, how it was chosen.\n# TYPE vxlan6d_vtep_info gauge\n")
	if m.vtepAddr != "" {
		fmt.Fprintf(w, "vxlan6d_vtep_info{address=%s,local=%s,source=%s,interface=%s,operator_chosen=%q} 1\n",
			strconv.Quote(m.vtepAddr), strconv.Quote(m.vtepLocal), strconv.Quote(m.vtepSource), strconv.Quote(m.vtepIface), strconv.FormatBool(m.operatorChosen))
	}
	fmt.Fprintf(w, "# HELP vxlan6d_lease_info The subnet(s) this node holds.\n# TYPE vxlan6d_lease_info gauge\n")
	if m.leaseSubnetV6 != "" {
		fmt.Fprintf(w, "vxlan6d_lease_info{ipv6_subnet=%s,ipv4_subnet=%s} 1\n", strconv.Quote(m.leaseSubnetV6), strconv.Quote(m.leaseSubnetV4))
	}
	fmt.Fprintf(w, "# HELP vxlan6d_lease_ttl_seconds TTL of this node's lease in etcd (renewed while running).\n# TYPE vxlan6d_lease_ttl_seconds gauge\nvxlan6d_lease_ttl_seconds %g\n", m.leaseTTL.Seconds())
	fmt.Fprintf(w, "# HELP vxlan6d_peers Peers programmed on the VXLAN device.\n# TYPE vxlan6d_peers gauge\nvxlan6d_peers %d\n", m.peers)
	fmt.Fprintf(w, "# HELP vxlan6d_reconciles_total Full reconciles of the peers against an etcd snapshot.\n# TYPE vxlan6d_reconciles_total counter\nvxlan6d_reconciles_total %d\n", m.reconciles)
	fmt.Fprintf(w, "# HELP vxlan6d_periodic_resyncs_total Periodic self-heals (device, peers, subnet file) against an etcd snapshot.\n# TYPE vxlan6d_periodic_resyncs_total counter\nvxlan6d_periodic_resyncs_total %d\n", m.periodicResyncs)
	fmt.Fprintf(w, "# HELP vxlan6d_watch_events_total Lease watch events applied, by type.\n# TYPE vxlan6d_watch_events_total counter\n")
	for _, k := range []string{"added", "removed", "resync"} {
		fmt.Fprintf(w, "vxlan6d_watch_events_total{type=%q} %d\n", k, m.watchEvents[k])
	}
	fmt.Fprintf(w, "# HELP vxlan6d_errors_total Errors, by operation.\n# TYPE vxlan6d_errors_total counter\n")
	ops := make([]string, 0, len(m.errors))
	for k := range m.errors {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	for _, k := range ops {
		fmt.Fprintf(w, "vxlan6d_errors_total{op=%q} %d\n", k, m.errors[k])
	}
	fmt.Fprintf(w, "# HELP vxlan6d_ready 1 once lease, device and subnet file are ready (and the network config in etcd is the one in use).\n# TYPE vxlan6d_ready gauge\nvxlan6d_ready %d\n", b(m.haveLease && m.haveDevice && m.haveSubnetFile && m.lostSubnet == "" && m.configProblem == ""))
	fmt.Fprintf(w, "# HELP vxlan6d_previous_subnet_lost 1 when this node did not get its previous subnet back at start (another node holds it).\n# TYPE vxlan6d_previous_subnet_lost gauge\nvxlan6d_previous_subnet_lost %d\n", b(m.lostSubnet != ""))
}

func (m *metrics) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w)
}

func (m *metrics) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	ok, missing := m.ready()
	if !ok {
		http.Error(w, "not ready: waiting for "+missing, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// startServers listens on the metrics and healthz addresses (one server
// when they are equal). A listen error is returned at once, before anything
// is written to etcd. The servers stop when ctx ends.
func (m *metrics) startServers(ctx context.Context, metricsAddr, healthzAddr string, log *slog.Logger) error {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if metricsAddr != "" {
		mux(metricsAddr).HandleFunc("/metrics", m.serveMetrics)
	}
	if healthzAddr != "" {
		mux(healthzAddr).HandleFunc("/healthz", m.serveHealthz)
	}
	var listeners []net.Listener
	for addr := range muxes {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("listen on %s for metrics/healthz: %w", addr, err)
		}
		listeners = append(listeners, l)
		srv := &http.Server{Handler: muxes[addr], ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics/healthz server stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("serving", "addr", l.Addr().String(), "metrics", addr == metricsAddr, "healthz", addr == healthzAddr)
	}
	return nil
}
