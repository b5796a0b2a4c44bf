package mdns

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"
)

func TestMain(m *testing.M) {
	if os.Getenv(netnsChildEnv) == "1" {
		os.Exit(netnsChild()) // the test binary re-executed inside the namespace
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

// newFakeClock is a clock the test moves.
func newFakeClock() *testkit.Clock { return testkit.NewClock(time.Unix(1_700_000_000, 0)) }

// rig is a Responder on loopback with the sockets around it: group gets
// what it multicasts, querier asks as an mDNS querier (port 5353 on a
// real link), legacy as a plain DNS resolver.
type rig struct {
	r       *Responder
	addr    netip.AddrPort // the responder's socket
	group   *net.UDPConn
	querier *net.UDPConn
	legacy  *net.UDPConn
	clock   *testkit.Clock
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func udpAddrPort(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func newRig(t *testing.T, opts ...Option) *rig {
	t.Helper()
	g := &rig{group: listenLoopback(t), querier: listenLoopback(t), legacy: listenLoopback(t), clock: newFakeClock()}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	g.addr = udpAddrPort(conn)
	opts = append([]Option{
		WithGroup(udpAddrPort(g.group)),
		withQuerierPort(udpAddrPort(g.querier).Port()),
		withClock(g.clock),
		WithAddrs(netip.MustParseAddr("192.0.2.1")),
	}, opts...)
	g.r, err = New(conn, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { g.r.Close() })
	return g
}

// add adds svcs and reads their first announcement off the group.
func (g *rig) add(t *testing.T, svcs ...Service) {
	t.Helper()
	require.NoError(t, g.r.Add(svcs...))
	seen := map[string]bool{}
	for len(seen) < len(svcs) {
		m := readMsg(t, g.group)
		for _, a := range m.Answers {
			if a.Header.Type == dnsmessage.TypePTR && a.Header.Name.String() == "_shelly._tcp.local." {
				seen[a.Body.(*dnsmessage.PTRResource).PTR.String()] = true
			}
		}
	}
}

// ask sends a query with questions qs (and known answers) from c.
func (g *rig) ask(t *testing.T, c *net.UDPConn, id uint16, qs []dnsmessage.Question, known ...dnsmessage.Resource) {
	t.Helper()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: id}, Questions: qs, Answers: known}
	b, err := m.Pack()
	require.NoError(t, err)
	_, err = c.WriteToUDPAddrPort(b, g.addr)
	require.NoError(t, err)
}

func q(name string, t dnsmessage.Type) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: t, Class: dnsmessage.ClassINET}
}

func qu(name string, t dnsmessage.Type) dnsmessage.Question {
	x := q(name, t)
	x.Class |= quBit
	return x
}

// readMsg reads one message from c, within waitTimeout.
func readMsg(t *testing.T, c *net.UDPConn) *dnsmessage.Message {
	t.Helper()
	m, n, err := tryRead(c, waitTimeout)
	require.NoError(t, err, "no message")
	require.LessOrEqual(t, n, maxPacketCeiling)
	return m
}

func tryRead(c *net.UDPConn, d time.Duration) (*dnsmessage.Message, int, error) {
	buf := make([]byte, 65536)
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, 0, err
	}
	n, err := c.Read(buf)
	if err != nil {
		return nil, 0, err
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		return nil, n, errors.Join(errors.New("unpacking"), err)
	}
	return &m, n, nil
}

// readAnswer reads messages from c until one that is no announcement
// (announcements carry the _services PTRs).
func readAnswer(t *testing.T, c *net.UDPConn) *dnsmessage.Message {
	t.Helper()
	for range 100 {
		m := readMsg(t, c)
		if len(m.Answers) == 0 || m.Answers[0].Header.Name.String() != "_services._dns-sd._udp.local." {
			return m
		}
	}
	t.Fatal("only announcements")
	return nil
}

// marker asks, from the querier, for the host A record of instance
// (multicast, never rate limited) and reads group until that answer
// comes; it returns what came before it. As the responder answers one
// query at a time, whatever an earlier query caused arrives first.
func (g *rig) marker(t *testing.T, host string) []*dnsmessage.Message {
	t.Helper()
	g.ask(t, g.querier, 0, []dnsmessage.Question{q(host+".local.", dnsmessage.TypeA)})
	var before []*dnsmessage.Message
	for range 10_000 {
		m := readMsg(t, g.group)
		if len(m.Answers) == 1 && m.Answers[0].Header.Type == dnsmessage.TypeA &&
			m.Answers[0].Header.Name.String() == host+".local." && len(m.Additionals) == 0 {
			return before
		}
		before = append(before, m)
	}
	t.Fatal("marker never came")
	return nil
}

// rr is a record in a form tests compare.
type rr struct {
	Section string
	Name    string
	Type    string
	Flush   bool
	TTL     uint32
	Data    string
}

func records(m *dnsmessage.Message) []rr {
	var out []rr
	for _, s := range []struct {
		name string
		rs   []dnsmessage.Resource
	}{{"an", m.Answers}, {"ns", m.Authorities}, {"ar", m.Additionals}} {
		for _, r := range s.rs {
			x := rr{Section: s.name, Name: r.Header.Name.String(), Type: r.Header.Type.String()[4:],
				Flush: r.Header.Class&cacheFlush != 0, TTL: r.Header.TTL}
			switch b := r.Body.(type) {
			case *dnsmessage.PTRResource:
				x.Data = b.PTR.String()
			case *dnsmessage.SRVResource:
				x.Data = b.Target.String() + ":" + strconv.Itoa(int(b.Port))
			case *dnsmessage.TXTResource:
				x.Data = join(b.TXT)
			case *dnsmessage.AResource:
				x.Data = netip.AddrFrom4(b.A).String()
			}
			out = append(out, x)
		}
	}
	return out
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}

var (
	pro3em = Service{Instance: "shellypro3em-a0dd6ca0c27c", Port: 80, Gen: 2, App: "Pro3EM", Ver: "1.7.5",
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.68.64")}}
	mini1g4 = Service{Instance: "shelly1minig4-7c2c67643858", Port: 8081, Gen: 4, App: "Mini1G4", Ver: "1.6.99-dev118535"}
)

// memConn is an in-memory transport: queries go in by send, what the
// responder writes is kept (no socket buffer to overflow).
type memConn struct {
	in     chan memPacket
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	out    []memPacket
}

type memPacket struct {
	b    []byte
	addr netip.AddrPort
}

func newMemConn() *memConn {
	return &memConn{in: make(chan memPacket), closed: make(chan struct{})}
}

func (c *memConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.addr, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, dst netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, memPacket{append([]byte(nil), b...), dst})
	return nil
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// send delivers a query from src.
func (c *memConn) send(t *testing.T, src netip.AddrPort, id uint16, qs ...dnsmessage.Question) {
	t.Helper()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: id}, Questions: qs}
	b, err := m.Pack()
	require.NoError(t, err)
	select {
	case c.in <- memPacket{b, src}:
	case <-time.After(waitTimeout):
		t.Fatal("the responder does not read")
	}
}

// take returns what was written so far and forgets it.
func (c *memConn) take() []memPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}
