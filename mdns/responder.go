package mdns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by Add and Remove after Close.
var ErrClosed = errors.New("mdns: responder closed")

// mdnsGroup is the mDNS IPv4 group and port (RFC 6762).
var mdnsGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), 5353)

// Packet sizes: what a message may hold on an Ethernet link (1500 bytes
// less the IPv4 and UDP headers), and the most any link gets: RFC 6762
// section 17 allows 9000 bytes with the headers, and python-zeroconf (Home
// Assistant's browser) drops messages over 8966.
const (
	DefaultMaxPacket = 1500 - 28
	maxPacketCeiling = 8966
	minPacket        = 512
)

// Responder answers mDNS queries for many devices on one socket, and
// announces them when they come and go. Its methods are safe for
// concurrent use.
//
// It runs two goroutines: one reads the socket and answers each query
// before reading the next, one sends the announcements that Add schedules.
// Close stops both.
type Responder struct {
	t         transport
	group     netip.AddrPort // where multicast answers go
	mdnsPort  uint16         // queries from another port are legacy unicast (RFC 6762 section 6.7)
	maxPacket int
	addrs     []netip.Addr // for services without Addrs
	log       *slog.Logger
	clock     clock
	epoch     time.Time

	mu      sync.RWMutex
	closed  bool
	byInst  map[string]*entry // lower-case instance
	byHost  map[string]*entry // lower-case host label
	order   []*entry
	txts    map[string][]string // interned TXT sets
	pending []*entry            // entries with announcements left

	sendMu sync.Mutex // serialises messages with goodbyes (see packer.write)

	limits rateLimits // reader goroutine only

	wake      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	scratch   []*entry // reader goroutine only
}

// Option configures a Responder.
type Option func(*Responder)

// WithGroup sets where multicast answers and announcements are sent, and
// its port is the one mDNS queriers send from (queries from any other port
// are answered as legacy unicast, RFC 6762 section 6.7). Default:
// 224.0.0.251:5353.
func WithGroup(g netip.AddrPort) Option {
	return func(r *Responder) { r.group, r.mdnsPort = g, g.Port() }
}

// WithMaxPacket sets the largest message written, in bytes (the link's
// MTU less the IP and UDP headers), from 512 to 8966 (python-zeroconf,
// Home Assistant's browser, drops larger ones). Default: 1472 (Ethernet)
// for New, the interface's MTU less 28 for Listen.
func WithMaxPacket(n int) Option { return func(r *Responder) { r.maxPacket = n } }

// WithAddrs sets the IPv4 addresses of services added without Addrs.
// Default: none for New (such a service is refused), the interface's for
// Listen.
func WithAddrs(addrs ...netip.Addr) Option {
	return func(r *Responder) { r.addrs = append([]netip.Addr(nil), addrs...) }
}

// WithLogger sets where socket errors and dropped queries are logged, at
// debug level. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(r *Responder) { r.log = l } }

// withClock replaces the clock that spaces announcements (tests).
func withClock(c clock) Option { return func(r *Responder) { r.clock = c } }

// withQuerierPort sets the port that is not legacy (tests, whose group and
// querier cannot share a port on one address).
func withQuerierPort(p uint16) Option { return func(r *Responder) { r.mdnsPort = p } }

// New starts a Responder on conn, which it owns from now on (Close closes
// it). conn must already receive the queries (for mDNS: bound to port 5353
// and a member of 224.0.0.251 on the link); Listen does that for an
// interface. Multicast answers go to WithGroup's address.
func New(conn net.PacketConn, opts ...Option) (*Responder, error) {
	if conn == nil {
		return nil, errors.New("mdns: New: nil conn")
	}
	return start(plainConn{conn}, opts)
}

func start(t transport, opts []Option) (*Responder, error) {
	r := &Responder{
		t:         t,
		group:     mdnsGroup,
		mdnsPort:  mdnsGroup.Port(),
		maxPacket: DefaultMaxPacket,
		log:       slog.Default(),
		clock:     realClock{},
		byInst:    map[string]*entry{},
		byHost:    map[string]*entry{},
		txts:      map[string][]string{},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	if err := r.check(); err != nil {
		t.Close()
		return nil, err
	}
	r.epoch = r.clock.Now()
	r.wg.Add(2)
	go r.readLoop()
	go r.announceLoop()
	return r, nil
}

// check validates the options.
func (r *Responder) check() error {
	for i, a := range r.addrs {
		if !unicastIPv4(a) {
			return fmt.Errorf("mdns: WithAddrs: %v is no unicast IPv4 address", a.Unmap())
		}
		r.addrs[i] = a.Unmap()
	}
	switch {
	case r.maxPacket < minPacket || r.maxPacket > maxPacketCeiling:
		return fmt.Errorf("mdns: WithMaxPacket(%d): want %d to %d", r.maxPacket, minPacket, maxPacketCeiling)
	case !r.group.IsValid():
		return errors.New("mdns: WithGroup: an invalid address")
	case r.log == nil:
		return errors.New("mdns: WithLogger(nil): a logger is needed")
	case r.clock == nil:
		return errors.New("mdns: a nil clock")
	}
	return nil
}

// Add adds services, or replaces those already there with the same
// instance, and announces them (twice, one second apart). Either all are
// added or, with an error saying which is wrong, none.
func (r *Responder) Add(svcs ...Service) error {
	es := make([]*entry, len(svcs))
	for i := range svcs {
		host, err := svcs[i].check()
		if err != nil {
			return err
		}
		addrs := r.addrs
		if len(svcs[i].Addrs) > 0 {
			addrs = make([]netip.Addr, len(svcs[i].Addrs))
			for j, a := range svcs[i].Addrs {
				addrs[j] = a.Unmap()
			}
		} else if len(addrs) == 0 {
			return fmt.Errorf("mdns: %s: no address: give Addrs, or use Listen or WithAddrs", svcs[i].Instance)
		}
		es[i] = &entry{instance: svcs[i].Instance, host: host, port: uint16(svcs[i].Port), addrs: addrs}
	}
	var goodbyes []group
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if err := r.checkNames(es); err != nil {
		r.mu.Unlock()
		return err
	}
	for i, e := range es {
		key := svcs[i].txtKey()
		txt, ok := r.txts[key]
		if !ok {
			txt = []string{"gen=" + fmt.Sprint(svcs[i].Gen), "app=" + svcs[i].App, "ver=" + svcs[i].Ver}
			r.txts[key] = txt
		}
		e.txt = txt
		if old := r.byInst[strings.ToLower(e.instance)]; old != nil {
			// Records that change say goodbye first: SRV and TXT carry no
			// cache-flush bit (as on real devices), so the old ones would
			// stay in caches beside the new.
			if k := old.changed(e); k != 0 {
				goodbyes = append(goodbyes, group{e: old, ans: k})
			}
			r.drop(old)
		}
		e.idx = len(r.order)
		r.order = append(r.order, e)
		r.byInst[strings.ToLower(e.instance)] = e
		r.byHost[strings.ToLower(e.host)] = e
		e.annLeft, e.annAt = announcements, 0
		r.pending = append(r.pending, e)
	}
	r.mu.Unlock()
	r.sendAll(goodbyes, modeGoodbye)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// checkNames refuses an instance or host used twice, in es or by another
// device already there.
func (r *Responder) checkNames(es []*entry) error {
	inst := make(map[string]bool, len(es))
	for _, e := range es {
		k := strings.ToLower(e.instance)
		if inst[k] {
			return fmt.Errorf("mdns: instance %q given twice", e.instance)
		}
		inst[k] = true
	}
	hosts := make(map[string]string, len(es))
	for _, e := range es {
		k := strings.ToLower(e.host)
		if other, ok := hosts[k]; ok {
			return fmt.Errorf("mdns: host %q given to both %q and %q", e.host, other, e.instance)
		}
		hosts[k] = e.instance
		if old := r.byHost[k]; old != nil && !inst[strings.ToLower(old.instance)] {
			return fmt.Errorf("mdns: host %q already belongs to %q", e.host, old.instance)
		}
	}
	return nil
}

// drop takes e out of the maps and the order; r.mu is held.
func (r *Responder) drop(e *entry) {
	e.removed.Store(true)
	delete(r.byInst, strings.ToLower(e.instance))
	if r.byHost[strings.ToLower(e.host)] == e {
		delete(r.byHost, strings.ToLower(e.host))
	}
	last := r.order[len(r.order)-1]
	r.order[e.idx], last.idx = last, e.idx
	r.order[len(r.order)-1] = nil
	r.order = r.order[:len(r.order)-1]
}

// Remove takes the services of these instances away and sends their
// goodbyes (their records with TTL 0, RFC 6762 section 10.1), as a device
// that stops or falls asleep. Instances not there are ignored.
func (r *Responder) Remove(instances ...string) error {
	var gs []group
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	for _, name := range instances {
		if e := r.byInst[strings.ToLower(name)]; e != nil {
			r.drop(e)
			gs = append(gs, group{e: e, ans: kAll})
		}
	}
	r.mu.Unlock()
	r.sendAll(gs, modeGoodbye)
	return nil
}

// Len returns the number of services the responder holds.
func (r *Responder) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.order)
}

// Close sends the goodbyes of every service, closes the socket and
// returns once the responder's goroutines have exited. Later calls return
// the first call's result.
func (r *Responder) Close() error {
	r.closeOnce.Do(r.close)
	return r.closeErr
}

func (r *Responder) close() {
	r.mu.Lock()
	r.closed = true
	gs := make([]group, 0, len(r.order)+1)
	if len(r.order) > 0 {
		gs = append(gs, group{ans: kSvcShelly | kSvcHTTP})
	}
	for _, e := range r.order {
		e.removed.Store(true)
		gs = append(gs, group{e: e, ans: kAll})
	}
	r.order, r.pending = nil, nil
	clear(r.byInst)
	clear(r.byHost)
	r.mu.Unlock()

	close(r.done) // answers and announcements under way stop
	r.sendAll(gs, modeGoodbye)
	r.closeErr = r.t.Close()
	r.wg.Wait()
}

// sendAll multicasts gs, packed into as few messages as they fit.
func (r *Responder) sendAll(gs []group, m mode) {
	if len(gs) == 0 {
		return
	}
	p := r.newPacker(r.group, m, r.maxPacket)
	for _, g := range gs {
		p.add(g)
	}
	p.flush()
}

// closing reports whether Close has begun: answers and announcements
// under way stop.
func (r *Responder) closing() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *Responder) logf(format string, args ...any) {
	r.log.Debug(fmt.Sprintf(format, args...))
}

// readLoop answers queries until the socket is closed.
func (r *Responder) readLoop() {
	defer r.wg.Done()
	buf := make([]byte, 9000)
	for {
		n, src, err := r.t.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.logf("mdns: reading: %v", err)
			select { // a socket that keeps failing must not spin
			case <-r.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if src.IsValid() {
			r.handle(buf[:n], src)
		}
	}
}
