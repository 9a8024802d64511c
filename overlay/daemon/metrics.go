package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// livenessTimeout is how long the main loop may go without a beat before
// /livez fails: far longer than anything the loop does in one go (a
// 30s VTEP move, a reconcile of thousands of peers), so only a stuck loop
// trips it.
const livenessTimeout = 2 * time.Minute

// etcdOps are the error ops that are etcd failures, also counted in
// vxlan6d_etcd_errors_total.
var etcdOps = map[string]bool{
	"read_node_annotations": true, "read_network_config": true, "acquire_lease": true,
	"list_leases": true, "move_lease": true, "periodic_resync": true, "move_vtep": true,
}

// metrics is the daemon's state as shown on /metrics (through
// prometheus/client_golang: a collector reads these fields under the lock)
// and on /livez, /readyz and /healthz.
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
	ignoredPeers   int
	reconciles     uint64
	// periodicResyncs counts self-heals that read etcd (--resync-interval
	// and the early retries after a failed data-path write).
	periodicResyncs uint64
	watchEvents     map[string]uint64
	errors          map[string]uint64
	renewals        uint64
	renewFailures   uint64

	// Readiness (each must hold for /readyz to say 200) is derived from
	// the fields it describes: a lease once leaseSubnetV6 is set, the
	// device once deviceName is, the subnet file once subnetFile is.
	//
	// lostSubnet is the previous subnet(s) the node did not get back; set,
	// the daemon is not ready.
	lostSubnet string
	// configProblem: why the network config in etcd is not the one in use
	// (not ready while set).
	configProblem string
	// leaseReserved: an operator's reservation, no TTL to renew.
	leaseReserved bool
	// leaseLost: KeepAlive lost the lease and is re-acquiring it.
	leaseLost bool
	lastRenew time.Time
	// deviceName is checked in the kernel on each probe ("" before the
	// device exists).
	deviceName string
	// subnetFile and subnetContent: the file must hold exactly this ("",
	// nil before it is first written).
	subnetFile    string
	subnetContent []byte
	// beat is the main loop's last sign of life (zero before it starts).
	beat time.Time

	reg       *prometheus.Registry
	reconcile prometheus.Histogram
}

func newMetrics(ttl time.Duration, version string) *metrics {
	m := &metrics{leaseTTL: ttl, watchEvents: map[string]uint64{}, errors: map[string]uint64{}, reg: prometheus.NewRegistry()}
	m.reconcile = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "vxlan6d_reconcile_duration_seconds",
		Help: "Time to reconcile the VXLAN device's peer entries to an etcd snapshot.",
		// 1 ms .. ~65 s: one peer to tens of thousands.
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
	})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vxlan6d_build_info", Help: "The vxlan6d build: version and Go version."},
		[]string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.reconcile, m)
	return m
}

func (m *metrics) update(f func(m *metrics)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *metrics) incError(op string) {
	m.update(func(m *metrics) { m.errors[op]++ })
}

// onRenew hears from lease.KeepAlive: a renewal etcd confirmed, or a lost
// lease / failed re-acquire.
func (m *metrics) onRenew(ok bool) {
	m.update(func(m *metrics) {
		if ok {
			m.renewals++
			m.lastRenew, m.leaseLost = time.Now(), false
		} else {
			m.renewFailures++
			m.leaseLost = true
		}
	})
}

// setLease records a lease just acquired, moved or re-acquired.
func (m *metrics) setLease(v6, v4 string, reserved bool) {
	m.update(func(m *metrics) {
		m.leaseSubnetV6, m.leaseSubnetV4, m.leaseReserved = v6, v4, reserved
		m.leaseLost, m.lastRenew = false, time.Now()
	})
}

func (m *metrics) observeReconcile(d time.Duration, peers int) {
	m.reconcile.Observe(d.Seconds())
	m.update(func(m *metrics) { m.reconciles++; m.peers = peers })
}

func (m *metrics) heartbeat() { m.update(func(m *metrics) { m.beat = time.Now() }) }

// check is one readiness condition: "" when it holds, else why not.
type check struct{ name, problem string }

// checks evaluates every readiness condition now: the lease from the
// renewals KeepAlive reported, the device and the subnet file in the
// kernel and on disk (someone may have deleted them since the loop last
// looked), the config from the last time it was read.
func (m *metrics) checks() []check {
	m.mu.Lock()
	haveLease, lost, reserved, last, ttl := m.leaseSubnetV6 != "", m.leaseLost, m.leaseReserved, m.lastRenew, m.leaseTTL
	dev, file, content, cfgProblem, lostSubnet := m.deviceName, m.subnetFile, m.subnetContent, m.configProblem, m.lostSubnet
	m.mu.Unlock()
	cs := []check{{name: "lease"}, {name: "device"}, {name: "subnet-file"}, {name: "config"}, {name: "previous-subnet"}}
	switch {
	case !haveLease:
		cs[0].problem = "no lease yet"
	case lost:
		cs[0].problem = "lease lost, re-acquiring"
	case !reserved && !last.IsZero() && time.Since(last) >= ttl:
		cs[0].problem = fmt.Sprintf("not renewed for %s (TTL %s): etcd unreachable?", time.Since(last).Round(time.Second), ttl)
	}
	if dev == "" {
		cs[1].problem = "no vxlan device yet"
	} else if _, err := netlinksafe.LinkByName(dev); err != nil {
		cs[1].problem = fmt.Sprintf("vxlan device %s: %v", dev, err)
	}
	if file == "" {
		cs[2].problem = "subnet file not written yet"
	} else if cur, err := os.ReadFile(file); err != nil {
		cs[2].problem = err.Error()
	} else if !bytes.Equal(cur, content) {
		cs[2].problem = file + " differs from the lease"
	}
	if cfgProblem != "" {
		cs[3].problem = "the network config in etcd is not the one in use: " + cfgProblem
	}
	if lostSubnet != "" {
		cs[4].problem = "the previous subnet " + lostSubnet + " is held by another node; containers using it are cut off"
	}
	return cs
}

func (m *metrics) ready() (bool, string) {
	var missing []string
	for _, c := range m.checks() {
		if c.problem != "" {
			missing = append(missing, c.name+": "+c.problem)
		}
	}
	return len(missing) == 0, strings.Join(missing, "; ")
}

func (m *metrics) live() (bool, string) {
	m.mu.Lock()
	beat := m.beat
	m.mu.Unlock()
	if !beat.IsZero() && time.Since(beat) > livenessTimeout {
		return false, fmt.Sprintf("main loop silent for %s", time.Since(beat).Round(time.Second))
	}
	return true, ""
}

var (
	descVTEP      = prometheus.NewDesc("vxlan6d_vtep_info", "The VTEP in use: advertised address, device local address, how it was chosen.", []string{"address", "local", "source", "interface", "operator_chosen"}, nil)
	descLease     = prometheus.NewDesc("vxlan6d_lease_info", "The subnet(s) this node holds.", []string{"ipv6_subnet", "ipv4_subnet"}, nil)
	descTTL       = prometheus.NewDesc("vxlan6d_lease_ttl_seconds", "TTL of this node's lease in etcd (renewed while running).", nil, nil)
	descPeers     = prometheus.NewDesc("vxlan6d_peers", "Peers programmed on the VXLAN device.", nil, nil)
	descPeerState = prometheus.NewDesc("vxlan6d_peer_leases", "Leases of other nodes at the last reconcile, by state (programmed, ignored: invalid or conflicting).", []string{"state"}, nil)
	descRecon     = prometheus.NewDesc("vxlan6d_reconciles_total", "Full reconciles of the peers against an etcd snapshot.", nil, nil)
	descResync    = prometheus.NewDesc("vxlan6d_periodic_resyncs_total", "Periodic self-heals (device, peers, subnet file) against an etcd snapshot.", nil, nil)
	descWatch     = prometheus.NewDesc("vxlan6d_watch_events_total", "Lease watch events applied, by type.", []string{"type"}, nil)
	descErrors    = prometheus.NewDesc("vxlan6d_errors_total", "Errors, by operation.", []string{"op"}, nil)
	descEtcdErr   = prometheus.NewDesc("vxlan6d_etcd_errors_total", "Failed etcd operations, by operation.", []string{"op"}, nil)
	descRenew     = prometheus.NewDesc("vxlan6d_lease_renewals_total", "Renewals of this node's etcd lease confirmed by etcd.", nil, nil)
	descRenewFail = prometheus.NewDesc("vxlan6d_lease_renewal_failures_total", "Times this node's lease was lost or could not be re-acquired.", nil, nil)
	descReady     = prometheus.NewDesc("vxlan6d_ready", "1 while every readiness condition holds (/readyz).", nil, nil)
	descCond      = prometheus.NewDesc("vxlan6d_ready_condition", "1 while the readiness condition holds.", []string{"condition"}, nil)
	descLost      = prometheus.NewDesc("vxlan6d_previous_subnet_lost", "1 when this node did not get its previous subnet back at start (another node holds it).", nil, nil)
)

// Describe sends nothing: the series depend on the state (an unchecked
// collector), which the registry allows.
func (m *metrics) Describe(chan<- *prometheus.Desc) {}

// Collect turns the state into series.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	cs := m.checks()
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if m.vtepAddr != "" {
		gauge(descVTEP, 1, m.vtepAddr, m.vtepLocal, m.vtepSource, m.vtepIface, strconv.FormatBool(m.operatorChosen))
	}
	if m.leaseSubnetV6 != "" {
		gauge(descLease, 1, m.leaseSubnetV6, m.leaseSubnetV4)
	}
	gauge(descTTL, m.leaseTTL.Seconds())
	gauge(descPeers, float64(m.peers))
	gauge(descPeerState, float64(m.peers), "programmed")
	gauge(descPeerState, float64(m.ignoredPeers), "ignored")
	counter(descRecon, m.reconciles)
	counter(descResync, m.periodicResyncs)
	for _, k := range []string{"added", "removed", "resync"} {
		counter(descWatch, m.watchEvents[k], k)
	}
	for op, n := range m.errors {
		counter(descErrors, n, op)
		if etcdOps[op] {
			counter(descEtcdErr, n, op)
		}
	}
	counter(descRenew, m.renewals)
	counter(descRenewFail, m.renewFailures)
	ready := 1.0
	for _, c := range cs {
		v := 1.0
		if c.problem != "" {
			v, ready = 0, 0
		}
		gauge(descCond, v, c.name)
	}
	gauge(descReady, ready)
	lost := 0.0
	if m.lostSubnet != "" {
		lost = 1
	}
	gauge(descLost, lost)
}

// write is the text exposition of every series (what /metrics serves to
// a plain scraper).
func (m *metrics) write(w io.Writer) error {
	mfs, err := m.reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// probe serves one health endpoint: 200 and "ok" or 503 and the reasons.
func probe(check func() (bool, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := check(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
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
		mux(metricsAddr).Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	}
	if healthzAddr != "" {
		mx := mux(healthzAddr)
		mx.Handle("/livez", probe(m.live))
		mx.Handle("/readyz", probe(m.ready))
		mx.Handle("/healthz", probe(m.ready))
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
