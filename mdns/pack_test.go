package mdns

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

// The packer's size accounting is dnsmessage's compression exactly, for
// every mix of records: otherwise messages come out too large (and are
// split) or half empty.
func TestPackerSizeIsTheBuiltSize(t *testing.T) {
	mc := newMemConn()
	r, err := start(mc, []Option{withClock(newFakeClock()), WithAddrs(netip.MustParseAddr("192.0.2.1"))})
	require.NoError(t, err)
	defer r.Close()
	svcs := append(fleet(20), pro3em, mini1g4,
		Service{Instance: "ShellyWallDisplay-00082261E102", Port: 80, Gen: 2, App: "WallDisplay", Ver: "2.6.2"},
		Service{Instance: "shellyplus1-e465b8f3028c", Host: "shellyplus1-e465b8f3028c", Port: 80, Gen: 2, App: "Plus1", Ver: "1.7.5",
			Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}})
	require.NoError(t, r.Add(svcs...))
	r.mu.RLock()
	es := append([]*entry(nil), r.order...)
	r.mu.RUnlock()

	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		p := r.newPacker(mdnsGroup, mode(rnd.IntN(2)), 1<<14)
		for range 1 + rnd.IntN(12) {
			g := group{e: es[rnd.IntN(len(es))], ans: uint16(rnd.IntN(int(kAll) + 1)), add: uint16(rnd.IntN(int(kAll) + 1))}
			g.add &^= g.ans
			if rnd.IntN(8) == 0 {
				g = group{ans: uint16(rnd.IntN(4)) * kSvcShelly}
			}
			p.add(g)
		}
		msg, _, err := p.build(p.groups)
		require.NoError(t, err)
		dup := false
		for i, a := range p.groups {
			for _, b := range p.groups[:i] {
				dup = dup || a.e == b.e
			}
		}
		if dup { // records sent once are counted twice: an upper bound
			require.GreaterOrEqual(t, p.size, len(msg))
		} else {
			require.Equal(t, p.size, len(msg), "%+v", p.groups)
		}
	}
}

// The memory a held service costs, at a fleet's size. The figure is in
// the package doc.
func TestMemoryPerService(t *testing.T) {
	const n = 10_000
	mc := newMemConn()
	clk := newFakeClock()
	r, err := start(mc, []Option{withClock(clk)})
	require.NoError(t, err)
	defer r.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	svcs := fleet(n) // fresh strings and address slices, as a caller's
	require.NoError(t, r.Add(svcs...))
	svcs = nil
	require.Eventually(t, func() bool { return len(clk.Deadlines()) == 1 }, waitTimeout, time.Millisecond)
	clk.Advance(announceGap) // the second and last announcement
	require.Eventually(t, func() bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return len(r.pending) == 0
	}, waitTimeout, time.Millisecond)
	mc.take()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d services held: %.0f bytes each", n, per)
	require.Less(t, per, 600.0)
	require.Equal(t, n, r.Len())
	runtime.KeepAlive(svcs)
}

// Whatever arrives, the responder answers within its bounds: no panic, no
// message over the limit, every message one dnsmessage parses.
func FuzzHandle(f *testing.F) {
	for _, qs := range [][]dnsmessage.Question{
		{q("_shelly._tcp.local.", dnsmessage.TypePTR), qu("_http._tcp.local.", dnsmessage.TypePTR)},
		{q("_services._dns-sd._udp.local.", dnsmessage.TypeALL)},
		{q("shellypro3em-a0dd6ca0c27c._shelly._tcp.local.", dnsmessage.TypeALL), q("ShellyPro3EM-A0DD6CA0C27C.local.", dnsmessage.TypeA)},
	} {
		b, err := (&dnsmessage.Message{Questions: qs}).Pack()
		require.NoError(f, err)
		f.Add(b, true)
		f.Add(b, false)
	}
	mc := newMemConn()
	clk := newFakeClock()
	r, err := start(mc, []Option{withClock(clk), WithAddrs(netip.MustParseAddr("192.0.2.1"))})
	require.NoError(f, err)
	f.Cleanup(func() { r.Close() })
	require.NoError(f, r.Add(append(fleet(30), pro3em, mini1g4)...))
	f.Fuzz(func(t *testing.T, b []byte, mdnsPort bool) {
		src := netip.MustParseAddrPort("192.0.2.9:5353")
		if !mdnsPort {
			src = netip.MustParseAddrPort("192.0.2.9:40000")
		}
		clk.Advance(time.Second) // past the one-second rule
		mc.take()
		r.handle(b, src)
		for _, p := range mc.take() {
			require.LessOrEqual(t, len(p.b), r.maxPacket)
			var m dnsmessage.Message
			require.NoError(t, m.Unpack(p.b))
		}
	})
}
