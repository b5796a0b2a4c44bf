package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// emGetStatus is what a Marstek battery asks a Pro 3EM, one datagram.
const emGetStatus = `{"id":0,"method":"EM.GetStatus","params":{"id":0}}`

// BenchmarkUDPRoundTrip measures EM.GetStatus over UDP RPC (protocol
// section 16.2), one request at a time on 127.0.0.1, against a bare UDP
// server that answers every datagram with the same reply bytes. Client and
// servers run in this process.
//
//	go test ./bench -run '^$' -bench UDPRoundTrip -count 5
func BenchmarkUDPRoundTrip(b *testing.B) {
	p, err := profile.Builtin("pro3em-gen2")
	if err != nil {
		b.Fatal(err)
	}
	d, err := device.New(device.Options{Model: p, ID: "shellypro3em-c049ef8cf4e0", Channels: device.ChannelOptions{UDP: "127.0.0.1:0"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(benchTimeout)
	for d.UDPAddr() == nil {
		if time.Now().After(deadline) {
			b.Fatal("the device never listened on UDP")
		}
		time.Sleep(time.Millisecond) // polling a listener that has no ready event
	}
	devAddr := d.UDPAddr()
	reply := roundTrip(b, devAddr, 1)

	b.Run("bare", func(b *testing.B) {
		srv, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			buf := make([]byte, 65536)
			for {
				_, from, err := srv.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = srv.WriteTo(reply, from)
			}
		}()
		defer func() {
			_ = srv.Close()
			<-stopped
		}()
		b.ResetTimer()
		roundTrip(b, srv.LocalAddr(), b.N)
		reportRate(b)
		recordBare(b, "UDPRoundTrip")
	})
	b.Run("shellyws", func(b *testing.B) {
		b.ReportAllocs()
		roundTrip(b, devAddr, b.N)
		reportRate(b)
		reportRatio(b, "UDPRoundTrip")
	})
}

// roundTrip sends emGetStatus n times, one after the other, and returns
// the last reply.
func roundTrip(b *testing.B, to net.Addr, n int) []byte {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 65536)
	req := []byte(emGetStatus)
	var got int
	for range n {
		if _, err := c.WriteTo(req, to); err != nil {
			b.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			b.Fatal(err)
		}
		if got, _, err = c.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
	return append([]byte(nil), buf[:got]...)
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
}
