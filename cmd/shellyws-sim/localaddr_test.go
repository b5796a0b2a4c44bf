//go:build unix

package main

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestLocalAddrs(t *testing.T) {
	for _, tc := range []struct {
		cidr  string
		hosts uint64
		addrs map[int]string // device → source address
	}{
		{"127.0.0.0/24", 254, map[int]string{0: "127.0.0.1", 253: "127.0.0.254", 254: "127.0.0.1", 600: "127.0.0.93"}},
		{"127.0.0.77/24", 254, map[int]string{0: "127.0.0.1"}}, // masked
		{"127.0.0.0/16", 65534, map[int]string{255: "127.0.1.0", 65533: "127.0.255.254", 65534: "127.0.0.1"}},
		{"127.0.0.8/30", 2, map[int]string{0: "127.0.0.9", 1: "127.0.0.10", 2: "127.0.0.9"}},
		{"127.0.0.8/31", 2, map[int]string{0: "127.0.0.8", 1: "127.0.0.9"}},
		{"127.0.0.5/32", 1, map[int]string{0: "127.0.0.5", 7: "127.0.0.5"}},
		{"::1/128", 1, map[int]string{3: "::1"}},
		{"fd00::/120", 255, map[int]string{0: "fd00::1", 254: "fd00::ff", 255: "fd00::1"}},
		{"fd00::/64", maxLocalHosts, map[int]string{0: "fd00::1", 65536: "fd00::1:1"}},
	} {
		l, err := parseLocalAddr(tc.cidr)
		require.NoError(t, err, tc.cidr)
		assert.Equal(t, tc.hosts, l.hosts, tc.cidr)
		for i, want := range tc.addrs {
			assert.Equal(t, netip.MustParseAddr(want), l.addr(i), "%s device %d", tc.cidr, i)
		}
	}
	for _, bad := range []string{"", "127.0.0.1", "127.0.0.0/33", "localhost/24", "127.0.0.0/x"} {
		_, err := parseLocalAddr(bad)
		var ue *usageError
		require.ErrorAs(t, err, &ue, bad)
		assert.Contains(t, err.Error(), "CIDR", bad)
	}
}

func TestLocalAddrFlag(t *testing.T) {
	s, err := parseFlags([]string{"-server", "ws://127.0.0.1:1/", "-local-addr", "127.0.0.0/24", "-devices", "300"})
	require.NoError(t, err)
	assert.Equal(t, netip.MustParseAddr("127.0.0.254"), s.localAddrs.last(s.devices))

	// TEST-NET-2 is on no machine: binding to it fails before any dial.
	_, err = parseFlags([]string{"-server", "ws://127.0.0.1:1/", "-local-addr", "198.51.100.0/24"})
	var ue *usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "198.51.100.1 is not on this machine")

	_, err = parseFlags([]string{"-local-addr", "127.0.0.0/24"})
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "-local-addr needs -server")

	p := startSimulator(t, "-server", "ws://127.0.0.1:1/", "-local-addr", "127.0.0.0/99")
	assert.Equal(t, 2, p.exitCode(t, waitTimeout))
	assert.Contains(t, p.out.String(), `-local-addr "127.0.0.0/99": want an address prefix in CIDR notation`)
}

// TestLocalAddrSpreadsDials checks, at the server, the source address of
// each device's connection: device i dials from host i mod 6 of a /29.
func TestLocalAddrSpreadsDials(t *testing.T) {
	const base = "shellyplus1pm-aabbccddee00"
	const n = 8
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", base, "-devices", "8", "-local-addr", "127.0.0.16/29")
	want := map[string]string{}
	for i := range n {
		want[device.DeriveID(base, i)] = netip.AddrFrom4([4]byte{127, 0, 0, byte(17 + i%6)}).String()
	}
	got := map[string]string{}
	for range n {
		c := srv.AcceptT(t)
		c.ExpectFullStatusT(t)
		host, _, err := net.SplitHostPort(c.RemoteAddr())
		require.NoError(t, err)
		got[c.Src()] = host
	}
	assert.Equal(t, want, got)
	p.out.waitFor(t, "dialing from 127.0.0.17 … 127.0.0.22 (-local-addr 127.0.0.16/29, device i from address i mod 6)")
	p.stop(t)
}
