package shellyws

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/shellyws/shellyws/internal/bpool"
	"github.com/shellyws/shellyws/internal/frame"
)

// UDP RPC (protocol section 16.2): what a Marstek battery uses to read a
// Pro 3EM. Written here rather than taken from a package: it is one
// datagram in, one out, on net.PacketConn; what matters is the device's
// rules (auth, dst "unknown", -108, silence for garbage) and that an idle
// listener holds no 64 KiB buffer (see readDatagram).

// MaxDatagram is the largest UDP payload over IPv4 (65,535 less the IP and
// UDP headers): the largest request ServeUDP takes and reply it sends.
const MaxDatagram = 65507

// DefaultUDPMaxInFlight bounds the requests ServeUDP serves at once.
const DefaultUDPMaxInFlight = 4

// udpUnknownDst is the dst of an answer to a UDP request without src: what
// the batteries are known to accept (section 16.2, decided).
const udpUnknownDst = "unknown"

// udpDropLogEvery rate-limits the debug line about dropped datagrams.
const udpDropLogEvery = 10 * time.Second

// udpWorkerIdle is how long a worker waits for the next request before it
// ends.
const udpWorkerIdle = time.Second

// UDPOption configures ServeUDP.
type UDPOption func(*udpOptions)

type udpOptions struct {
	maxInFlight int
	notifyTo    net.Addr
}

// WithUDPMaxInFlight bounds how many requests are served at once; while
// all are busy the socket is not read, and the kernel keeps (or drops)
// what arrives. A value below 1 means the default. Default:
// DefaultUDPMaxInFlight (4).
func WithUDPMaxInFlight(n int) UDPOption {
	return func(o *udpOptions) { o.maxInFlight = n }
}

// WithUDPNotify sends every notification of the component (NotifyStatus,
// NotifyEvent) to addr, one datagram each, without dst, from the serving
// socket: sys.rpc_udp.dst_addr of a device. One that does not fit a
// datagram is dropped. Default (and nil): none.
func WithUDPNotify(addr net.Addr) UDPOption {
	return func(o *udpOptions) { o.notifyTo = addr }
}

// ServeUDP serves c's Dispatcher on conn, one request frame per datagram,
// until ctx ends (then it closes conn) or reading conn fails. It owns conn
// and returns once every request it started has been answered and their
// AfterReply functions have run: nil after ctx ended, else the read error.
//
// A frame with an id is answered with one datagram sent to the sender's
// address from conn, keys in section 2's order; with no src in the request
// its dst is "unknown", as the batteries that read meters over UDP expect.
// A reply that would not fit a datagram (MaxDatagram) is replaced by error
// -108. A frame without id is executed and not answered. A datagram that
// is not a request (not JSON, not an object, no method) is dropped without
// reply, logged at debug level at most once every 10 s with a count; so is
// every datagram while the device reboots or sleeps. Request.Channel is
// ChannelUDP.
//
// UDP is not exempt from authentication: once the component's password is
// set, a request needs the frame's "auth" object as on the inbound
// websocket (a 401 error carries the challenge); Shelly.GetDeviceInfo is
// exempt.
//
// An idle ServeUDP costs its goroutine and no buffer: a datagram is read
// into a pooled buffer only once it has arrived (on Unix; elsewhere the
// read holds one).
func ServeUDP(ctx context.Context, conn net.PacketConn, c *Component, opts ...UDPOption) error {
	o := udpOptions{maxInFlight: DefaultUDPMaxInFlight}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.maxInFlight < 1 {
		o.maxInFlight = DefaultUDPMaxInFlight
	}
	s := &udpServer{
		c:     c,
		conn:  conn,
		log:   c.opts.logger.With("local", conn.LocalAddr().String()),
		slots: make(chan struct{}, o.maxInFlight),
		jobs:  make(chan udpJob),
		auth:  NewHandler(c, WithMaxClients(0), WithClientQueueSize(0)),
	}
	defer s.auth.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if o.notifyTo != nil {
		unsubscribe := c.subscribe(func(method string, params []byte) { s.notify(o.notifyTo, method, params) })
		defer unsubscribe()
	}
	err := s.readLoop(ctx)
	s.wg.Wait()
	s.drops.flush(s.log)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// udpServer is one ServeUDP.
type udpServer struct {
	c     *Component
	conn  net.PacketConn
	log   *slog.Logger
	slots chan struct{} // a value per worker
	jobs  chan udpJob   // requests handed to idle workers
	wg    sync.WaitGroup
	auth  *Handler // its frame check (authgate.go), with a nonce table of this channel's own
	drops dropCounter
}

// readLoop reads and dispatches datagrams until reading fails.
func (s *udpServer) readLoop(ctx context.Context) error {
	for {
		bp, n, from, err := readDatagram(s.conn)
		if err != nil {
			return err
		}
		if n > MaxDatagram || from == nil {
			putDatagramBuf(bp)
			s.drops.add(s.log, "larger than a datagram, or no sender")
			continue
		}
		cl, err := decodeCall(ctx, ChannelUDP, (*bp)[:n]) // copies what it keeps
		putDatagramBuf(bp)
		if cl == nil {
			s.drops.add(s.log, err.Error())
			continue
		}
		if err := s.hand(ctx, udpJob{cl: cl, from: from}); err != nil {
			return err
		}
	}
}

// udpJob is one decoded request and where to answer it.
type udpJob struct {
	cl   *call
	from net.Addr
}

// hand gives j to an idle worker, or starts one while fewer than the bound
// run; with every worker busy it waits for the first that is free.
// Workers live on while requests come (their stacks stay grown: a
// goroutine per datagram spent 15 % of a round trip growing its stack)
// and end after udpWorkerIdle without one, so an idle listener has none.
func (s *udpServer) hand(ctx context.Context, j udpJob) error {
	select {
	case s.jobs <- j:
		return nil
	default:
	}
	select {
	case s.jobs <- j:
	case s.slots <- struct{}{}:
		s.wg.Add(1)
		go s.worker(ctx, j)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// worker serves j, then the jobs handed to it, until it has been idle for
// udpWorkerIdle or ctx ends.
func (s *udpServer) worker(ctx context.Context, j udpJob) {
	defer s.wg.Done()
	defer func() { <-s.slots }()
	t := time.NewTimer(udpWorkerIdle)
	defer t.Stop()
	for {
		s.serve(j)
		t.Reset(udpWorkerIdle)
		select {
		case j = <-s.jobs:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// serve runs one request and sends its reply.
func (s *udpServer) serve(j udpJob) {
	err := s.c.serveCall(j.cl, frameChannel{
		authorize: s.auth.authorizeFrame,
		noSrcDst:  udpUnknownDst,
		maxReply:  MaxDatagram,
	}, func(_ string, resp []byte) { s.send(j.from, resp) })
	if err != nil {
		s.drops.add(s.log, err.Error())
	}
}

// send writes one datagram to addr; a failure is logged, not fatal: the
// next request may come from elsewhere.
func (s *udpServer) send(addr net.Addr, b []byte) {
	if _, err := s.conn.WriteTo(b, addr); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("shellyws: UDP reply not sent", "to", addr.String(), "err", err)
	}
}

// notify sends one notification to addr, without dst.
func (s *udpServer) notify(addr net.Addr, method string, params []byte) {
	b := frame.AppendNotification(make([]byte, 0, len(params)+64), s.c.id, "", method, params)
	if len(b) > MaxDatagram {
		s.drops.add(s.log, "notification larger than a datagram")
		return
	}
	s.send(addr, b)
}

// dropCounter counts dropped datagrams and logs them at debug level at
// most once per udpDropLogEvery, so a flood of garbage costs no log flood.
type dropCounter struct {
	mu     sync.Mutex
	n      int
	last   time.Time
	reason string
}

func (d *dropCounter) add(log *slog.Logger, reason string) {
	d.mu.Lock()
	d.n++
	d.reason = reason
	now := time.Now()
	if now.Sub(d.last) < udpDropLogEvery {
		d.mu.Unlock()
		return
	}
	n := d.n
	d.n, d.last = 0, now
	d.mu.Unlock()
	log.Debug("shellyws: UDP datagrams dropped", "count", n, "last_reason", reason)
}

// flush logs what is still counted.
func (d *dropCounter) flush(log *slog.Logger) {
	d.mu.Lock()
	n, reason := d.n, d.reason
	d.n = 0
	d.mu.Unlock()
	if n > 0 {
		log.Debug("shellyws: UDP datagrams dropped", "count", n, "last_reason", reason)
	}
}

// getDatagramBuf returns a buffer big enough for any datagram (a larger
// read is detected and dropped), from the module's one pool.
func getDatagramBuf() *[]byte { return bpool.GetLarge() }

// A large buffer holds MaxDatagram+1 bytes: this fails to compile if not.
var _ [bpool.Large - MaxDatagram - 1]struct{}

func putDatagramBuf(b *[]byte) { bpool.Put(b) }

// readDatagramBlocking reads with ReadFrom, holding a pooled buffer while
// it waits: for a conn that is no socket.
func readDatagramBlocking(conn net.PacketConn) (*[]byte, int, net.Addr, error) {
	bp := getDatagramBuf()
	n, from, err := conn.ReadFrom(*bp)
	if err != nil {
		putDatagramBuf(bp)
		return nil, 0, nil, err
	}
	return bp, n, from, nil
}
