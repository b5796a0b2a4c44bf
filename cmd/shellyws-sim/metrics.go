package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
)

// metricsPrefix starts the name of every metric of -metrics.
const metricsPrefix = "shellyws_sim_"

// otherMethod is the method label of requests for methods no device
// serves, and of methods past maxMethodLabels: a server sending random
// method names must not grow the metrics without bound.
const otherMethod = "other"

// maxMethodLabels bounds the method label's values.
const maxMethodLabels = 128

// The reasons a dial failed or a connection was lost, as the labels of
// dial_failure_reasons_total and disconnect_reasons_total. The set is
// fixed so that its cardinality is too.
var failureReasons = []string{
	"refused", "reset", "timeout", "eof", "no_local_address", "dns", "tls",
	"http_4xx", "http_5xx", "http_other", "server_close", "ping_timeout", "other",
}

// simMetrics are the Prometheus metrics of -metrics. Counts of the fleet
// come from each component's Stats and State, read at scrape time, so a
// device costs nothing between scrapes beyond its timed dispatcher and
// counting backoff; neither exists without -metrics.
type simMetrics struct {
	reg     *prometheus.Registry
	devices []*device.Device // set before the first scrape, then read-only

	reqDur  *prometheus.HistogramVec
	reqErrs *prometheus.CounterVec
	dialWhy *prometheus.CounterVec
	lostWhy *prometheus.CounterVec

	// methods maps a method name as requested to its label's observers;
	// replaced whole (copy on write) when a new spelling is learnt.
	methods   atomic.Pointer[map[string]*methodObs]
	methodsMu sync.Mutex
	other     *methodObs

	descDevices, descConnects, descDisconnects, descDialFailures *prometheus.Desc
	descQueued, descDropped, descSent                            *prometheus.Desc
}

// methodObs are the observers of one method label, looked up once.
type methodObs struct {
	dur  prometheus.Observer
	errs prometheus.Counter
}

func newSimMetrics() *simMetrics {
	m := &simMetrics{
		reg: prometheus.NewRegistry(),
		reqDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricsPrefix + "request_duration_seconds",
			Help: "Time the devices took to serve requests (the Dispatcher's Dispatch), by method; methods no device serves are \"other\".",
			// 10 µs to about 1.3 s: a simulated method takes microseconds,
			// a slow store or a Shelly.Reboot far longer.
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 9),
		}, []string{"method"}),
		reqErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "request_errors_total",
			Help: "Requests answered with an error, by method.",
		}, []string{"method"}),
		dialWhy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "dial_failure_reasons_total",
			Help: "Failed dials the devices retried after, by reason.",
		}, []string{"reason"}),
		lostWhy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsPrefix + "disconnect_reasons_total",
			Help: "Lost connections the devices redialled after, by reason (a Restart or the shutdown is not retried, so not counted here).",
		}, []string{"reason"}),
		descDevices: prometheus.NewDesc(metricsPrefix+"devices",
			"Devices by the state of their outbound connection: connected, connecting, disconnected, closed, asleep.", []string{"state"}, nil),
		descConnects: prometheus.NewDesc(metricsPrefix+"connects_total",
			"Connections that came up (NotifyFullStatus sent).", nil, nil),
		descDisconnects: prometheus.NewDesc(metricsPrefix+"disconnects_total",
			"Connections that ended.", nil, nil),
		descDialFailures: prometheus.NewDesc(metricsPrefix+"dial_failures_total",
			"Connection attempts that never came up.", nil, nil),
		descQueued: prometheus.NewDesc(metricsPrefix+"notifications_queued",
			"Notifications waiting for a connection.", nil, nil),
		descDropped: prometheus.NewDesc(metricsPrefix+"notifications_dropped_total",
			"Notifications dropped because a device's queue was full.", nil, nil),
		descSent: prometheus.NewDesc(metricsPrefix+"notifications_sent_total",
			"Notifications sent, by method.", []string{"method"}, nil),
	}
	for _, r := range failureReasons {
		m.dialWhy.WithLabelValues(r)
		m.lostWhy.WithLabelValues(r)
	}
	m.other = m.obs(otherMethod)
	empty := map[string]*methodObs{}
	m.methods.Store(&empty)
	m.reg.MustRegister(m, m.reqDur, m.reqErrs, m.dialWhy, m.lostWhy,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *simMetrics) obs(label string) *methodObs {
	return &methodObs{dur: m.reqDur.WithLabelValues(label), errs: m.reqErrs.WithLabelValues(label)}
}

// Describe implements prometheus.Collector.
func (m *simMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descDevices, m.descConnects, m.descDisconnects,
		m.descDialFailures, m.descQueued, m.descDropped, m.descSent} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one pass over the fleet.
func (m *simMetrics) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{"connected": 0, "connecting": 0, "disconnected": 0, "closed": 0, "asleep": 0}
	var st shellyws.Stats
	for _, d := range m.devices {
		c := d.Component()
		states[d.State().String()]++
		s := c.Stats()
		st.Connects += s.Connects
		st.Disconnects += s.Disconnects
		st.DialFailures += s.DialFailures
		st.Queued += s.Queued
		st.Dropped += s.Dropped
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(m.descDevices, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(m.descConnects, prometheus.CounterValue, float64(st.Connects))
	ch <- prometheus.MustNewConstMetric(m.descDisconnects, prometheus.CounterValue, float64(st.Disconnects))
	ch <- prometheus.MustNewConstMetric(m.descDialFailures, prometheus.CounterValue, float64(st.DialFailures))
	ch <- prometheus.MustNewConstMetric(m.descQueued, prometheus.GaugeValue, float64(st.Queued))
	ch <- prometheus.MustNewConstMetric(m.descDropped, prometheus.CounterValue, float64(st.Dropped))
	// Every connection opens with a NotifyFullStatus and counts as up only
	// once it is written. Stats has no count of the deltas and events sent.
	ch <- prometheus.MustNewConstMetric(m.descSent, prometheus.CounterValue, float64(st.Connects), "NotifyFullStatus")
}

// method returns the observers of a request's method. known looks a
// spelling up among the methods the serving device has; it runs once per
// new spelling.
func (m *simMetrics) method(name string, known func() []string) *methodObs {
	if o, ok := (*m.methods.Load())[name]; ok {
		return o
	}
	m.methodsMu.Lock()
	defer m.methodsMu.Unlock()
	cur := *m.methods.Load()
	if o, ok := cur[name]; ok {
		return o
	}
	if len(cur) >= maxMethodLabels {
		return m.other
	}
	o := m.other
	for _, k := range known() {
		if strings.EqualFold(k, name) {
			o = nil
			// Another spelling of the same method shares its label.
			for seen, so := range cur {
				if strings.EqualFold(seen, k) {
					o = so
					break
				}
			}
			if o == nil {
				o = m.obs(k)
			}
			break
		}
	}
	next := make(map[string]*methodObs, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = o
	m.methods.Store(&next)
	return o
}

// timedDispatcher is a device's Dispatcher under -metrics: the device's
// own dispatch (with its debug line and OnRequest), timed.
type timedDispatcher struct {
	m *simMetrics
	d *device.Device // set right after device.New
}

// Dispatch implements shellyws.Dispatcher.
func (t *timedDispatcher) Dispatch(ctx context.Context, req *shellyws.Request) (any, error) {
	start := time.Now()
	res, err := t.d.Dispatch(ctx, req)
	elapsed := time.Since(start)
	o := t.m.method(req.Method, t.d.Methods)
	o.dur.Observe(elapsed.Seconds())
	if err != nil {
		o.errs.Inc()
	}
	return res, err
}

// countingBackoff wraps a device's backoff policy to count why it retries:
// the library asks for a delay once per failed dial or lost connection,
// right after it, so the cause is the component's LastError.
type countingBackoff struct {
	policy      func(attempt int) time.Duration
	m           *simMetrics
	comp        *shellyws.Component
	disconnects uint64
}

// delay is the device's policy (shellyws.WithBackoff).
func (b *countingBackoff) delay(attempt int) time.Duration {
	st := b.comp.Stats()
	lost := st.Disconnects > b.disconnects
	b.disconnects = st.Disconnects
	reason := failureReason(b.comp.LastError())
	if lost {
		b.m.lostWhy.WithLabelValues(reason).Inc()
	} else {
		b.m.dialWhy.WithLabelValues(reason).Inc()
	}
	return b.policy(attempt)
}

// failureReason sorts a connection's error into one of failureReasons.
func failureReason(err error) string {
	if err == nil {
		return "other"
	}
	if websocket.CloseStatus(err) != -1 {
		return "server_close"
	}
	var ce *shellyws.ConnError
	if errors.As(err, &ce) {
		switch {
		case ce.HTTPStatus >= 400 && ce.HTTPStatus < 500:
			return "http_4xx"
		case ce.HTTPStatus >= 500 && ce.HTTPStatus < 600:
			return "http_5xx"
		case ce.HTTPStatus != 0:
			return "http_other"
		case ce.Op == "ping":
			return "ping_timeout"
		}
	}
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no_local_address" // out of ephemeral ports, or -local-addr not here
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.Is(err, shellyws.ErrNoUserCA), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr):
		return "tls"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return "other"
}

// deviceOptions returns the component options of one device under
// -metrics, and the function to call with the device once it is built.
func (m *simMetrics) deviceOptions(policy func(attempt int) time.Duration) ([]shellyws.Option, func(*device.Device)) {
	td := &timedDispatcher{m: m}
	if policy == nil {
		policy = shellyws.DefaultBackoff
	}
	cb := &countingBackoff{policy: policy, m: m}
	opts := []shellyws.Option{
		shellyws.WithDispatcher(td),
		shellyws.WithBackoff(cb.delay),
	}
	return opts, func(d *device.Device) {
		td.d = d
		cb.comp = d.Component()
	}
}

// metricsServer serves /metrics and Go's pprof endpoints.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	err chan error
}

// serveMetrics listens on addr and serves m there until close.
func serveMetrics(addr string, m *simMetrics) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &metricsServer{ln: ln, err: make(chan error, 1),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is the metrics endpoint.
func (s *metricsServer) URL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

// close stops the server; a CPU profile or trace in progress is cut short.
func (s *metricsServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serr := <-s.err; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
