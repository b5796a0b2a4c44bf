package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

func sortRR(rs []rr) []rr {
	sort.Slice(rs, func(i, j int) bool { return fmt.Sprint(rs[i]) < fmt.Sprint(rs[j]) })
	return rs
}

// The Pro 3EM's records as the device answers a browse
// (matterbridge-shelly src/mock/shellypro3em-A0DD6CA0C27C.mdns.json, less
// the name-based instance): PTR in the answer, SRV, TXT and A (with
// cache-flush) additional, TTL 120, and an mDNS response header.
func TestBrowseAnswerHasTheRecordsOfARealDevice(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	g.ask(t, g.querier, 0, []dnsmessage.Question{q("_shelly._tcp.local.", dnsmessage.TypePTR)})
	m := readMsg(t, g.group)
	require.True(t, m.Header.Response)
	require.True(t, m.Header.Authoritative)
	require.Zero(t, m.Header.ID)
	require.Empty(t, m.Questions)
	inst := "shellypro3em-a0dd6ca0c27c._shelly._tcp.local."
	require.Equal(t, []rr{
		{"an", "_shelly._tcp.local.", "PTR", false, 120, inst},
		{"ar", inst, "SRV", false, 120, "ShellyPro3EM-A0DD6CA0C27C.local.:80"},
		{"ar", inst, "TXT", false, 120, "gen=2 app=Pro3EM ver=1.7.5"},
		{"ar", "ShellyPro3EM-A0DD6CA0C27C.local.", "A", true, 120, "192.168.68.64"},
	}, records(m))

	g.ask(t, g.querier, 0, []dnsmessage.Question{q("_HTTP._tcp.local.", dnsmessage.TypePTR)})
	m = readMsg(t, g.group)
	inst = "shellypro3em-a0dd6ca0c27c._http._tcp.local."
	require.Equal(t, []rr{
		{"an", "_http._tcp.local.", "PTR", false, 120, inst},
		{"ar", inst, "SRV", false, 120, "ShellyPro3EM-A0DD6CA0C27C.local.:80"},
		{"ar", inst, "TXT", false, 120, "gen=2"},
		{"ar", "ShellyPro3EM-A0DD6CA0C27C.local.", "A", true, 120, "192.168.68.64"},
	}, records(m), "_http carries gen only")
}

// An announcement as the Mini 1 Gen4 sends it
// (shelly1minig4-7C2C67643858.mdns.json): both types' PTRs and the
// _services PTRs in the answer, SRV, TXT and one A additional; the
// default address when the service gives none.
func TestAnnouncementHasBothTypes(t *testing.T) {
	g := newRig(t)
	require.NoError(t, g.r.Add(mini1g4))
	m := readMsg(t, g.group)
	h, s := "shelly1minig4-7c2c67643858._http._tcp.local.", "shelly1minig4-7c2c67643858._shelly._tcp.local."
	host := "Shelly1MiniG4-7C2C67643858.local."
	require.Equal(t, sortRR([]rr{
		{"an", "_http._tcp.local.", "PTR", false, 120, h},
		{"an", "_shelly._tcp.local.", "PTR", false, 120, s},
		{"an", "_services._dns-sd._udp.local.", "PTR", false, 120, "_shelly._tcp.local."},
		{"an", "_services._dns-sd._udp.local.", "PTR", false, 120, "_http._tcp.local."},
		{"ar", h, "SRV", false, 120, host + ":8081"},
		{"ar", h, "TXT", false, 120, "gen=4"},
		{"ar", s, "SRV", false, 120, host + ":8081"},
		{"ar", s, "TXT", false, 120, "gen=4 app=Mini1G4 ver=1.6.99-dev118535"},
		{"ar", host, "A", true, 120, "192.0.2.1"},
	}), sortRR(records(m)))
}

// Two unsolicited announcements one second apart (RFC 6762 section 8.3),
// then none: the clock is the test's.
func TestAnnouncedTwiceOneSecondApart(t *testing.T) {
	g := newRig(t)
	t0 := g.clock.Now()
	g.add(t, pro3em)
	require.Eventually(t, func() bool { return len(g.clock.Deadlines()) == 1 }, waitTimeout, time.Millisecond)
	require.Equal(t, []time.Time{t0.Add(time.Second)}, g.clock.Deadlines(), "the second announcement is due 1 s after the first")
	g.clock.Advance(999 * time.Millisecond)
	require.Len(t, g.clock.Deadlines(), 1, "not yet")
	g.clock.Advance(time.Millisecond)
	m := readMsg(t, g.group)
	require.Contains(t, records(m), rr{"an", "_shelly._tcp.local.", "PTR", false, 120, "shellypro3em-a0dd6ca0c27c._shelly._tcp.local."})

	// No third: after a minute, the next message is the marker's answer.
	g.clock.Advance(time.Minute)
	require.Empty(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"))
	require.Empty(t, g.clock.Deadlines())
}

// A fleet added at once shares announcement messages.
func TestAnnouncementsOfAFleetShareMessages(t *testing.T) {
	g := newRig(t)
	svcs := fleet(200)
	require.NoError(t, g.r.Add(svcs...))
	seen := map[string]int{}
	msgs := 0
	for len(seen) < len(svcs) {
		m := readMsg(t, g.group)
		msgs++
		for _, a := range m.Answers {
			if a.Header.Name.String() == "_shelly._tcp.local." {
				seen[a.Body.(*dnsmessage.PTRResource).PTR.String()]++
			}
		}
	}
	require.Len(t, seen, 200)
	require.LessOrEqual(t, msgs, 200/4, "about 300 bytes a device in 1472-byte messages")
}

func TestServicesEnumeration(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	g.ask(t, g.querier, 0, []dnsmessage.Question{q("_services._dns-sd._udp.local.", dnsmessage.TypePTR)})
	m := readMsg(t, g.group)
	require.Equal(t, []rr{
		{"an", "_services._dns-sd._udp.local.", "PTR", false, 120, "_shelly._tcp.local."},
		{"an", "_services._dns-sd._udp.local.", "PTR", false, 120, "_http._tcp.local."},
	}, records(m))
}

// Instance and host queries, in any letter case; names the responder does
// not hold get nothing.
func TestInstanceAndHostQueries(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em, mini1g4)
	inst := "shellypro3em-a0dd6ca0c27c._shelly._tcp.local."
	host := "ShellyPro3EM-A0DD6CA0C27C.local."
	for _, c := range []struct {
		q    dnsmessage.Question
		want []rr
	}{
		{q("SHELLYPRO3EM-A0DD6CA0C27C._shelly._tcp.local.", dnsmessage.TypeSRV), []rr{
			{"an", inst, "SRV", false, 120, host + ":80"},
			{"ar", host, "A", true, 120, "192.168.68.64"},
		}},
		{q(inst, dnsmessage.TypeTXT), []rr{{"an", inst, "TXT", false, 120, "gen=2 app=Pro3EM ver=1.7.5"}}},
		{q("shellypro3em-a0dd6ca0c27c._http._tcp.local.", dnsmessage.TypeALL), []rr{
			{"an", "shellypro3em-a0dd6ca0c27c._http._tcp.local.", "SRV", false, 120, host + ":80"},
			{"an", "shellypro3em-a0dd6ca0c27c._http._tcp.local.", "TXT", false, 120, "gen=2"},
			{"ar", host, "A", true, 120, "192.168.68.64"},
		}},
		{q("shellypro3em-a0dd6ca0c27c.local.", dnsmessage.TypeA), []rr{{"an", host, "A", true, 120, "192.168.68.64"}}},
	} {
		g.ask(t, g.querier, 0, []dnsmessage.Question{c.q})
		require.Equal(t, c.want, records(readMsg(t, g.group)), c.q.Name.String())
	}

	// Nothing for unknown names, other types or classes.
	chaos := q(host, dnsmessage.TypeA)
	chaos.Class = dnsmessage.ClassCHAOS
	g.ask(t, g.querier, 0, []dnsmessage.Question{
		q("shellyplus1-000000000000._shelly._tcp.local.", dnsmessage.TypeSRV),
		q("nobody.local.", dnsmessage.TypeA),
		q(host, dnsmessage.TypeAAAA),
		q("_printer._tcp.local.", dnsmessage.TypePTR),
		chaos,
	})
	require.Empty(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"))

	// A record asked for twice, or both asked and additional, is sent once.
	g.ask(t, g.querier, 0, []dnsmessage.Question{q(inst, dnsmessage.TypeSRV), q(host, dnsmessage.TypeA), q(host, dnsmessage.TypeA)})
	require.Equal(t, []rr{
		{"an", inst, "SRV", false, 120, host + ":80"},
		{"an", host, "A", true, 120, "192.168.68.64"},
	}, records(readMsg(t, g.group)))
}

// A QU question is answered unicast to the asker, and nothing goes to the
// group.
func TestQUAnsweredUnicast(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	g.ask(t, g.querier, 0, []dnsmessage.Question{qu("_shelly._tcp.local.", dnsmessage.TypePTR)})
	m := readMsg(t, g.querier)
	require.Zero(t, m.Header.ID)
	require.Empty(t, m.Questions)
	require.Contains(t, records(m), rr{"an", "_shelly._tcp.local.", "PTR", false, 120, "shellypro3em-a0dd6ca0c27c._shelly._tcp.local."})
	require.Empty(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"), "a QU answer was multicast too")

	// Beyond the unicast budget per second, browses are answered by
	// multicast.
	for range unicastBrowses {
		g.ask(t, g.querier, 0, []dnsmessage.Question{qu("_http._tcp.local.", dnsmessage.TypePTR)})
	}
	for range unicastBrowses - 1 {
		readMsg(t, g.querier)
	}
	require.Len(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"), 1)
}

// A query from a port other than 5353 is a legacy resolver's (RFC 6762
// section 6.7): answered unicast with its id and question, TTL 10, no
// cache-flush bit.
func TestLegacyUnicastQuery(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	host := "ShellyPro3EM-A0DD6CA0C27C.local."
	g.ask(t, g.legacy, 0x4242, []dnsmessage.Question{q(host, dnsmessage.TypeA)})
	m := readMsg(t, g.legacy)
	require.Equal(t, uint16(0x4242), m.Header.ID)
	require.True(t, m.Header.Response)
	require.Equal(t, []dnsmessage.Question{q(host, dnsmessage.TypeA)}, m.Questions)
	require.Equal(t, []rr{{"an", host, "A", false, 10, "192.168.68.64"}}, records(m))
	require.Empty(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"))
}

// A legacy browse of a fleet gets one message: 512 bytes, or the EDNS(0)
// size it offers, with TC set.
func TestLegacyBrowseIsOneTruncatedMessage(t *testing.T) {
	g := newRig(t, WithMaxPacket(8966))
	require.NoError(t, g.r.Add(fleet(100)...))
	for _, c := range []struct {
		edns  int
		limit int
	}{{0, 512}, {1232, 1232}, {65535, 8966}} {
		m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7}, Questions: []dnsmessage.Question{q("_shelly._tcp.local.", dnsmessage.TypePTR)}}
		if c.edns > 0 {
			var opt dnsmessage.ResourceHeader
			require.NoError(t, opt.SetEDNS0(c.edns, dnsmessage.RCodeSuccess, false))
			m.Additionals = []dnsmessage.Resource{{Header: opt, Body: &dnsmessage.OPTResource{}}}
		}
		b, err := m.Pack()
		require.NoError(t, err)
		_, err = g.legacy.WriteToUDPAddrPort(b, g.addr)
		require.NoError(t, err)
		got, n, err := tryRead(g.legacy, waitTimeout)
		require.NoError(t, err)
		require.LessOrEqual(t, n, c.limit)
		require.Greater(t, n, c.limit-300, "as full as it gets")
		require.True(t, got.Header.Truncated)
		require.Equal(t, uint16(7), got.Header.ID)
		require.NotEmpty(t, got.Answers)
	}
}

// A browse of 2,000 devices for both types: every PTR once, split over
// messages no larger than the limit, each device with its SRV, TXT and A,
// and no more messages than needed. In memory: 600 messages at once would
// overflow a loopback socket's buffer.
func TestBrowseOfAFleetIsSplitOverMessages(t *testing.T) {
	for _, limit := range []int{DefaultMaxPacket, maxPacketCeiling} {
		mc := newMemConn()
		clk := newFakeClock()
		r, err := start(mc, []Option{withClock(clk), WithMaxPacket(limit)})
		require.NoError(t, err)
		require.NoError(t, r.Add(fleet(2000)...))
		require.Eventually(t, func() bool { return len(clk.Deadlines()) == 1 }, waitTimeout, time.Millisecond, "first announcements sent")
		mc.take()

		querier := netip.MustParseAddrPort("192.0.2.9:5353")
		mc.send(t, querier, 0, q("_shelly._tcp.local.", dnsmessage.TypePTR), q("_http._tcp.local.", dnsmessage.TypePTR))
		mc.send(t, querier, 0, q("nobody.local.", dnsmessage.TypeA)) // taken once the browse is answered
		out := mc.take()

		ptrs := map[string]int{}
		total := 0
		for _, p := range out {
			require.Equal(t, mdnsGroup, p.addr)
			require.LessOrEqual(t, len(p.b), limit)
			total += len(p.b)
			var m dnsmessage.Message
			require.NoError(t, m.Unpack(p.b))
			srv := map[string]bool{}
			for _, a := range m.Additionals {
				if a.Header.Type == dnsmessage.TypeSRV {
					srv[a.Header.Name.String()] = true
				}
			}
			for _, a := range m.Answers {
				require.Equal(t, dnsmessage.TypePTR, a.Header.Type)
				name := a.Body.(*dnsmessage.PTRResource).PTR.String()
				ptrs[name]++
				require.True(t, srv[name], "%s without its SRV", name)
			}
		}
		require.Len(t, ptrs, 4000)
		for name, n := range ptrs {
			require.Equal(t, 1, n, name)
		}
		t.Logf("2,000 devices, both types, limit %d: %d messages, %d bytes, %.0f bytes a message",
			limit, len(out), total, float64(total)/float64(len(out)))
		// A device's group is about 280 bytes: each message is full to
		// within one group.
		require.LessOrEqual(t, len(out), total/(limit-300)+1, "messages are packed full")
		require.NoError(t, r.Close())
	}
}

// Known answers (RFC 6762 section 7.1) with half their TTL left are not
// sent again; a browse is multicast at most once a second.
func TestKnownAnswersAndTheOneSecondRule(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em, mini1g4)
	browse := []dnsmessage.Question{q("_shelly._tcp.local.", dnsmessage.TypePTR)}
	known := func(inst string, ttl uint32) dnsmessage.Resource {
		return dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("_shelly._tcp.local."), Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: ttl},
			Body:   &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(inst + "._shelly._tcp.local.")},
		}
	}
	g.ask(t, g.querier, 0, browse, known("shellypro3em-a0dd6ca0c27c", 100))
	m := readMsg(t, g.group)
	require.Len(t, m.Answers, 1)
	require.Equal(t, "shelly1minig4-7c2c67643858._shelly._tcp.local.", m.Answers[0].Body.(*dnsmessage.PTRResource).PTR.String())

	// Within the second: not again.
	g.clock.Advance(999 * time.Millisecond)
	g.ask(t, g.querier, 0, browse)
	require.Empty(t, g.marker(t, "ShellyPro3EM-A0DD6CA0C27C"))

	// A second later; a known answer with less than half its TTL left
	// does not count.
	g.clock.Advance(time.Millisecond) // also sends the second announcement
	g.ask(t, g.querier, 0, browse, known("shellypro3em-a0dd6ca0c27c", 59), known("shelly1minig4-7c2c67643858", 120))
	m = readAnswer(t, g.group)
	require.Len(t, m.Answers, 1)
	require.Equal(t, "shellypro3em-a0dd6ca0c27c._shelly._tcp.local.", m.Answers[0].Body.(*dnsmessage.PTRResource).PTR.String())
}

// Remove sends the device's goodbye: every record with TTL 0. Close sends
// the rest's, the _services PTRs' included, and then Add is refused.
func TestGoodbyes(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em, mini1g4)
	require.NoError(t, g.r.Remove("SHELLYPRO3EM-A0DD6CA0C27C", "not-there"))
	m := readMsg(t, g.group)
	recs := records(m)
	require.Len(t, recs, 7)
	for _, x := range recs {
		require.Zero(t, x.TTL, x)
		require.Contains(t, strings.ToLower(x.Name+" "+x.Data), "a0dd6ca0c27c", x)
	}
	require.Equal(t, 1, g.r.Len())
	g.ask(t, g.querier, 0, []dnsmessage.Question{q("_shelly._tcp.local.", dnsmessage.TypePTR)})
	m = readMsg(t, g.group)
	require.Len(t, m.Answers, 1, "the removed device is not answered")

	require.NoError(t, g.r.Close())
	m = readMsg(t, g.group)
	recs = records(m)
	require.Len(t, recs, 9)
	for _, x := range recs {
		require.Zero(t, x.TTL, x)
	}
	require.Contains(t, recs, rr{"an", "_services._dns-sd._udp.local.", "PTR", false, 0, "_http._tcp.local."})
	require.ErrorIs(t, g.r.Add(pro3em), ErrClosed)
	require.ErrorIs(t, g.r.Remove(pro3em.Instance), ErrClosed)
	require.NoError(t, g.r.Close())
}

// Adding a service again with other records says goodbye to the old SRV,
// TXT and A first (they carry no cache-flush bit), then announces.
func TestReplacingAServiceRetiresItsOldRecords(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	updated := pro3em
	updated.Ver = "1.8.0"
	require.NoError(t, g.r.Add(updated))
	bye := records(readMsg(t, g.group))
	require.Equal(t, []rr{
		{"an", "shellypro3em-a0dd6ca0c27c._shelly._tcp.local.", "TXT", false, 0, "gen=2 app=Pro3EM ver=1.7.5"},
	}, bye, "only the changed records; the instance stays")
	hello := records(readMsg(t, g.group))
	require.Contains(t, hello, rr{"ar", "shellypro3em-a0dd6ca0c27c._shelly._tcp.local.", "TXT", false, 120, "gen=2 app=Pro3EM ver=1.8.0"})
	require.Equal(t, 1, g.r.Len())

	// The same records again: only announced.
	require.NoError(t, g.r.Add(updated))
	require.Equal(t, 120, int(records(readMsg(t, g.group))[0].TTL))
}

func TestAddRefusesBadServices(t *testing.T) {
	g := newRig(t)
	g.add(t, pro3em)
	mod := func(f func(*Service)) Service { s := mini1g4; f(&s); return s }
	for _, c := range []struct {
		svc  Service
		want string
	}{
		{mod(func(s *Service) { s.Instance = "" }), "1 to 63 bytes"},
		{mod(func(s *Service) { s.Instance = strings.Repeat("a", 64) }), "1 to 63 bytes"},
		{mod(func(s *Service) { s.Instance = "a.b" }), "no dot"},
		{mod(func(s *Service) { s.Host = "bad host" }), "letters, digits"},
		{mod(func(s *Service) { s.Port = 0 }), "port 0"},
		{mod(func(s *Service) { s.Port = 70000 }), "port 70000"},
		{mod(func(s *Service) { s.Addrs = []netip.Addr{netip.MustParseAddr("::1")} }), "IPv4"},
		{mod(func(s *Service) { s.Addrs = []netip.Addr{netip.IPv4Unspecified()} }), "IPv4"},
		{mod(func(s *Service) { s.Gen = 0 }), "gen 0"},
		{mod(func(s *Service) { s.App = "" }), "app and ver"},
		{mod(func(s *Service) { s.Host = "ShellyPro3EM-A0DD6CA0C27C" }), "already belongs to"},
	} {
		err := g.r.Add(fleet(1)[0], c.svc)
		require.ErrorContains(t, err, c.want)
		require.Equal(t, 1, g.r.Len(), "nothing added")
	}
	require.ErrorContains(t, g.r.Add(mini1g4, mini1g4), "given twice")

	// Without Addrs and without the responder's own, a service has none.
	conn := listenLoopback(t)
	r, err := New(conn)
	require.NoError(t, err)
	require.ErrorContains(t, r.Add(mini1g4), "no address")
	require.NoError(t, r.Close())
}

func TestHostName(t *testing.T) {
	for id, want := range map[string]string{
		"shellypro3em-a0dd6ca0c27c":      "ShellyPro3EM-A0DD6CA0C27C",
		"shellyplus1pm-441793d69718":     "ShellyPlus1PM-441793D69718",
		"shelly2pmg3-34cdb0770c4c":       "Shelly2PMG3-34CDB0770C4C",
		"shellyplusht-08b61fcd36a8":      "ShellyPlusHT-08B61FCD36A8",
		"shellyblugw-b0b21cfaad18":       "ShellyBluGw-B0B21CFAAD18",
		"ShellyWallDisplay-00082261E102": "ShellyWallDisplay-00082261E102",
		"shellyduobulbg3-aabbccddeeff":   "shellyduobulbg3-AABBCCDDEEFF", // no recorded answer: the id prefix
		"st-802-aabbccddeeff":            "st-802-AABBCCDDEEFF",
		"nodash":                         "nodash",
	} {
		require.Equal(t, want, HostName(id), id)
	}
	require.Len(t, hostPrefixes, 59)
	for k, v := range hostPrefixes {
		require.Equal(t, k, strings.ToLower(v))
	}
}

// fleet is n Plus 1PMs with ids ...000000 upwards.
func fleet(n int) []Service {
	out := make([]Service, n)
	for i := range out {
		out[i] = Service{Instance: fmt.Sprintf("shellyplus1pm-%012x", i), Port: 8000 + i%1000, Gen: 2, App: "Plus1PM", Ver: "1.7.5",
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}}
	}
	return out
}

func TestListenNamesTheInterface(t *testing.T) {
	_, err := Listen("nosuchif0")
	require.ErrorContains(t, err, `mdns: interface "nosuchif0"`)
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		opt  Option
		want string
	}{
		{WithMaxPacket(511), "WithMaxPacket(511)"},
		{WithMaxPacket(8967), "WithMaxPacket(8967)"},
		{WithAddrs(netip.MustParseAddr("224.0.0.1")), "no unicast IPv4"},
		{WithGroup(netip.AddrPort{}), "WithGroup"},
		{WithLogger(nil), "WithLogger(nil)"},
	} {
		conn := listenLoopback(t)
		_, err := New(conn, c.opt)
		require.ErrorContains(t, err, c.want)
		require.ErrorIs(t, conn.SetDeadline(time.Now()), net.ErrClosed, "New closed what it was given")
	}
	_, err := New(nil)
	require.Error(t, err)
}

// Add and Remove from many goroutines while queries are answered: the
// race detector's test, and the count comes out right.
func TestConcurrentAddRemove(t *testing.T) {
	mc := newMemConn()
	r, err := start(mc, []Option{withClock(newFakeClock())})
	require.NoError(t, err)
	svcs := fleet(400)
	done := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < len(svcs); i += 8 {
				if err := r.Add(svcs[i]); err != nil {
					done <- err
					return
				}
				if i%2 == 1 {
					if err := r.Remove(svcs[i].Instance); err != nil {
						done <- err
						return
					}
				}
			}
			done <- nil
		}()
	}
	querier := netip.MustParseAddrPort("192.0.2.9:5353")
	for range 20 {
		mc.send(t, querier, 0, qu("_shelly._tcp.local.", dnsmessage.TypePTR), q("shellyplus1pm-000000000002.local.", dnsmessage.TypeA))
	}
	for range 8 {
		require.NoError(t, <-done)
	}
	require.Equal(t, 200, r.Len())
	require.NoError(t, r.Close())
	mc.take()
}
