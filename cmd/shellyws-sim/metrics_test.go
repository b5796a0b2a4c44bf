//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// scrape reads the Prometheus text at url into series → value, the series
// as written, e.g. `shellyws_sim_devices{state="connected"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		m[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return m
}

// waitMetric scrapes until series has the value want.
func waitMetric(t *testing.T, url, series string, want float64) map[string]float64 {
	t.Helper()
	return waitScrape(t, url, series, want, func(v float64) bool { return v == want })
}

// waitScrape scrapes until ok(value of series).
func waitScrape(t *testing.T, url, series string, want float64, ok func(float64) bool) map[string]float64 {
	t.Helper()
	var m map[string]float64
	deadline := time.Now().Add(waitTimeout)
	for {
		m = scrape(t, url)
		if ok(m[series]) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %v; last scrape: %v", series, want, m)
		}
		time.Sleep(10 * time.Millisecond) // polling an HTTP endpoint: no event to wait on
	}
}

func TestMetrics(t *testing.T) {
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", "shellyplus1pm-aabbccddee00", "-devices", "3", "-metrics", "127.0.0.1:0")
	p.out.waitFor(t, "/debug/pprof/\n")
	match := regexp.MustCompile(`metrics on (http://127\.0\.0\.1:\d+/metrics), pprof on (http://127\.0\.0\.1:\d+/debug/pprof/)`).FindStringSubmatch(p.out.String())
	require.NotNil(t, match, p.out.String())
	url, pprofURL := match[1], match[2]

	conns := make([]*shellywstest.Conn, 3)
	for i := range conns {
		conns[i] = srv.AcceptT(t)
		conns[i].ExpectFullStatusT(t)
	}
	m := waitMetric(t, url, `shellyws_sim_devices{state="connected"}`, 3)
	assert.Equal(t, 3.0, m["shellyws_sim_connects_total"])
	assert.Equal(t, 3.0, m[`shellyws_sim_notifications_sent_total{method="NotifyFullStatus"}`])
	assert.Equal(t, 0.0, m[`shellyws_sim_devices{state="asleep"}`])
	assert.Contains(t, m, `shellyws_sim_devices{state="asleep"}`)
	assert.Equal(t, 0.0, m["shellyws_sim_disconnects_total"])
	assert.Contains(t, m, "go_goroutines")
	assert.Contains(t, m, "process_resident_memory_bytes")

	// Requests by method: each spelling of a method is one label, methods
	// no device has are "other".
	var st shellyws.Status
	conns[0].CallT(t, "Ws.GetStatus", nil, &st)
	assert.True(t, st.Connected)
	conns[1].CallT(t, "ws.getstatus", nil, &st)
	conns[1].CallT(t, "Shelly.GetDeviceInfo", nil, nil)
	for _, method := range []string{"No.Such", "Another.Unknown"} {
		err := conns[2].Call(context.Background(), method, nil, nil)
		require.Error(t, err)
		assert.Equal(t, shellyws.CodeNoHandler, shellyws.AsError(err).Code)
	}
	m = scrape(t, url)
	assert.Equal(t, 2.0, m[`shellyws_sim_request_duration_seconds_count{method="Ws.GetStatus"}`])
	assert.Equal(t, 2.0, m[`shellyws_sim_request_duration_seconds_bucket{method="Ws.GetStatus",le="+Inf"}`])
	assert.Positive(t, m[`shellyws_sim_request_duration_seconds_sum{method="Ws.GetStatus"}`])
	assert.Equal(t, 1.0, m[`shellyws_sim_request_duration_seconds_count{method="Shelly.GetDeviceInfo"}`])
	assert.Equal(t, 2.0, m[`shellyws_sim_request_duration_seconds_count{method="other"}`])
	assert.Equal(t, 2.0, m[`shellyws_sim_request_errors_total{method="other"}`])
	assert.Equal(t, 0.0, m[`shellyws_sim_request_errors_total{method="Ws.GetStatus"}`])
	for series := range m {
		assert.NotContains(t, series, "No.Such", "unknown methods get no label of their own")
		assert.NotContains(t, series, "ws.getstatus")
	}

	// A connection the server closes is a disconnect, by reason, and the
	// device comes back.
	require.NoError(t, conns[0].Close(websocket.StatusNormalClosure, "bye"))
	m = waitMetric(t, url, `shellyws_sim_disconnect_reasons_total{reason="server_close"}`, 1)
	assert.Equal(t, 1.0, m["shellyws_sim_disconnects_total"])
	back := srv.AcceptT(t)
	back.ExpectFullStatusT(t)
	m = waitMetric(t, url, "shellyws_sim_connects_total", 4)
	assert.Equal(t, 3.0, m[`shellyws_sim_devices{state="connected"}`])

	// pprof answers on the same address.
	res, err := http.Get(pprofURL)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, string(body), "goroutine")
	res, err = http.Get(strings.TrimSuffix(pprofURL, "/") + "/heap?debug=1")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	p.stop(t)
	_, err = http.Get(url)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "the metrics server stops with the simulator: %v", err)
}

// TestMetricsDialFailures: a server that fails the handshake (500: a status
// that keeps the normal back-off, unlike 429 and 503) shows as
// failed dials with reason http_5xx, and no device is connected.
func TestMetricsDialFailures(t *testing.T) {
	addr := serveLoopback(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})

	p := startSimulator(t, "-server", "ws://"+addr+"/", "-devices", "2", "-metrics", "127.0.0.1:0")
	p.out.waitFor(t, "/debug/pprof/\n")
	url := regexp.MustCompile(`metrics on (\S+/metrics)`).FindStringSubmatch(p.out.String())[1]
	// Both devices failed at least once; they retry after about a second.
	// A scrape is no snapshot: the registry runs its collectors at once,
	// and dial_failures_total, read from each device's Stats, can miss a
	// dial that failed during the scrape while the reasons, counted right
	// after it, show it. Each counter is waited for in turn: both only grow.
	atLeast2 := func(v float64) bool { return v >= 2 }
	waitScrape(t, url, `shellyws_sim_dial_failure_reasons_total{reason="http_5xx"}`, 2, atLeast2)
	m := waitScrape(t, url, "shellyws_sim_dial_failures_total", 2, atLeast2)
	assert.Equal(t, 0.0, m[`shellyws_sim_devices{state="connected"}`])
	assert.Equal(t, 0.0, m["shellyws_sim_connects_total"])
	p.stop(t)
}

func TestMetricsFlag(t *testing.T) {
	_, err := parseFlags([]string{"-server", "ws://127.0.0.1:1/", "-metrics", "9090"})
	var ue *usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), `-metrics "9090": want HOST:PORT`)

	for _, reason := range []struct {
		err  error
		want string
	}{
		{syscall.ECONNREFUSED, "refused"},
		{&shellyws.ConnError{Op: "dial", HTTPStatus: 401, Err: errors.New("x")}, "http_4xx"},
		{&shellyws.ConnError{Op: "ping", CloseCode: -1, Err: errors.New("no pong")}, "ping_timeout"},
		{&shellyws.ConnError{Op: "read", CloseCode: -1, Err: io.EOF}, "eof"},
		{syscall.EADDRNOTAVAIL, "no_local_address"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("something else"), "other"},
	} {
		assert.Equal(t, reason.want, failureReason(reason.err), "%v", reason.err)
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// serveLoopback serves h on 127.0.0.1 until the test ends, and returns its
// address.
func serveLoopback(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln := listenLoopback(t)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
