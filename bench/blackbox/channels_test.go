//go:build linux

package blackbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shellyws/shellyws/internal/mosquitto"
)

// BenchmarkChannelsRSS measures what the UDP and MQTT channels cost per
// device: the simulator's RSS with -bb.n devices connected to the loopback
// server, once outbound only and once with -udp (a socket each) and -mqtt
// (a broker connection each, to a mosquitto on 127.0.0.1), each against a
// one-device process of the same flags: (RSS(N) − RSS(1)) / (N − 1).
//
//	go test ./bench/blackbox -run '^$' -bench ChannelsRSS -benchtime 1x -count 3
func BenchmarkChannelsRSS(b *testing.B) {
	cfg := configFromFlags(1000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	srv, bin, err := serverAndSimulator(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()
	broker := mosquitto.Start(b)
	online := broker.Subscribe(b, "+/online")

	udp := []string{"-udp", "127.0.0.1:0"}
	mqtt := []string{"-mqtt", broker.Addr}
	measure := func(base string, n int, extra ...string) []int {
		reached := srv.expect(n, true)
		sim, err := startSimulator(bin, srv.URL(), base, n, cfg.env, extra...)
		if err != nil {
			b.Fatal(err)
		}
		defer sim.stop()
		if err := waitFor(ctx, reached, fleetLimit(n), sim, "fleet connected"); err != nil {
			b.Fatal(err)
		}
		if strings.Contains(strings.Join(extra, " "), "-mqtt") {
			prefix := base[:len(base)-6]
			for seen := 0; seen < n; {
				m := online.Next(b, fleetLimit(n))
				if strings.HasPrefix(m.Topic, prefix) && m.Payload == "true" {
					seen++
				}
			}
		}
		time.Sleep(cfg.settle) // let the fleet's start-up garbage be collected
		rss, err := sampleRSS(sim.pid(), cfg.samples, cfg.gap)
		if err != nil {
			b.Fatal(err)
		}
		return rss
	}
	for i := 0; i < b.N; i++ {
		// Ids differ per run: the broker keeps the last will of each.
		base := func(k int) string { return fmt.Sprintf("shellyplus1pm-%02x%02x00000000", i, k) }
		per := func(k int, extra ...string) float64 {
			one := measure(base(k), 1, extra...)
			all := measure(base(k+1), cfg.n, extra...)
			d := median(perDevice(all, one, cfg.n))
			b.Logf("%v: RSS(1) %v KiB, RSS(%d) %v KiB, %.1f KiB per device", extra, one, cfg.n, all, d)
			return d
		}
		b.ReportMetric(per(1), "KiB/device-outbound")
		b.ReportMetric(per(3, udp...), "KiB/device-udp")
		b.ReportMetric(per(5, mqtt...), "KiB/device-mqtt")
		b.ReportMetric(per(7, append(udp, mqtt...)...), "KiB/device-udp-mqtt")
	}
}
