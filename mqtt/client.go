package mqtt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/frame"
	"github.com/shellyws/shellyws/internal/sslca"
)

// Status is the mqtt component's status, as Mqtt.GetStatus answers it.
type Status struct {
	Connected bool `json:"connected"`
}

// ComponentKey is the key of the mqtt component in Shelly.GetStatus and in
// NotifyStatus.
const ComponentKey = "mqtt"

// Payloads of <prefix>/online and of the command that publishes every
// component's status.
const (
	onlineTrue   = "true"
	onlineFalse  = "false"
	statusUpdate = "status_update"
)

// Client is one device's MQTT channel: a client of the broker of its
// Config, serving the component's Dispatcher and publishing its
// notifications while Run runs. Its methods are safe for concurrent use.
type Client struct {
	c        *shellyws.Component
	cfg      Config
	opts     options
	prefix   string
	clientID string
	log      *slog.Logger

	connected atomic.Bool
	running   atomic.Bool
	queue     *noteQueue
}

// New returns the MQTT channel of c with cfg; cfg is copied. An enabled
// cfg that is invalid (see Config.Validate) or an option given a value
// that would break the client is an error.
func New(c *shellyws.Component, cfg Config, opts ...Option) (*Client, error) {
	if c == nil {
		return nil, errors.New("mqtt: New needs a component")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("mqtt: New: a nil Option")
		}
		opt(&o)
	}
	switch {
	case o.keepAlive < time.Second:
		return nil, fmt.Errorf("mqtt: WithKeepAlive(%v): want at least 1s", o.keepAlive)
	case o.connectTimeout <= 0:
		return nil, fmt.Errorf("mqtt: WithConnectTimeout(%v): must be positive", o.connectTimeout)
	case o.writeTimeout <= 0:
		return nil, fmt.Errorf("mqtt: WithWriteTimeout(%v): must be positive", o.writeTimeout)
	case o.healthyAfter < 0:
		return nil, fmt.Errorf("mqtt: WithHealthyAfter(%v): must not be negative", o.healthyAfter)
	}
	cfg = cloneConfig(cfg)
	return &Client{
		c:        c,
		cfg:      cfg,
		opts:     o,
		prefix:   prefixOf(cfg, c.ID()),
		clientID: clientIDOf(cfg, c.ID()),
		log:      o.logger,
		queue:    newNoteQueue(DefaultOfflineQueue),
	}, nil
}

func cloneConfig(cfg Config) Config {
	for _, p := range []**string{&cfg.Server, &cfg.ClientID, &cfg.User, &cfg.Pass, &cfg.SSLCA, &cfg.TopicPrefix} {
		if *p != nil {
			s := **p
			*p = &s
		}
	}
	return cfg
}

// Config returns the client's config, without its password.
func (cl *Client) Config() Config {
	cfg := cloneConfig(cl.cfg)
	cfg.Pass = nil
	return cfg
}

// TopicPrefix returns the prefix of every topic: topic_prefix, or the
// device id when that is null.
func (cl *Client) TopicPrefix() string { return cl.prefix }

// Connected reports whether the client is connected to its broker now.
func (cl *Client) Connected() bool { return cl.connected.Load() }

// Status returns the mqtt component's status.
func (cl *Client) Status() Status { return Status{Connected: cl.Connected()} }

// Run connects to the broker and serves until ctx ends, reconnecting with
// back-off (WithBackoff) when the connection drops or cannot be made, and
// never giving up. When ctx ends while connected it publishes
// <prefix>/online false (retained) and disconnects cleanly; a process that
// dies instead leaves that to the broker's will. Run returns nil once every
// goroutine it started has exited. A disabled config returns nil at once.
// Run may be called once at a time (shellyws.ErrAlreadyRunning).
//
// Notifications the component publishes while Run runs are sent (rpc_ntf,
// status_ntf); while disconnected at most DefaultOfflineQueue wait, the
// oldest dropped first.
func (cl *Client) Run(ctx context.Context) error {
	if !cl.running.CompareAndSwap(false, true) {
		return shellyws.ErrAlreadyRunning
	}
	defer cl.running.Store(false)
	if !cl.cfg.Enable {
		return nil
	}
	if cl.cfg.RPCNtf || cl.cfg.StatusNtf {
		unsubscribe := cl.c.Subscribe(func(method string, params json.RawMessage) {
			cl.queue.push(note{method: method, params: params})
		})
		defer unsubscribe()
	}
	failures := 0 // since the last healthy connection
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			failures++
			d := cl.opts.backoff(failures)
			if d < 0 {
				d = time.Minute // a policy that gives up must not stop a device
			}
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		s, err := cl.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			cl.log.Info("mqtt: connecting failed", "device", cl.c.ID(), "server", *cl.cfg.Server, "err", err)
			continue
		}
		cl.log.Info("mqtt: connected", "device", cl.c.ID(), "server", *cl.cfg.Server, "prefix", cl.prefix)
		start := time.Now()
		lost := s.serve(ctx)
		if lost == nil {
			return nil
		}
		cl.log.Info("mqtt: connection lost", "device", cl.c.ID(), "server", *cl.cfg.Server, "err", lost)
		if time.Since(start) >= cl.opts.healthyAfter {
			failures = 0
		}
	}
}

// session is one connection to the broker.
type session struct {
	cl     *Client
	pc     paho.Client
	ctx    context.Context // ends with the session; requests get it
	cancel context.CancelFunc

	lostOnce sync.Once
	lostCh   chan struct{} // closed when paho reports the connection lost
	lostErr  error

	connMu sync.Mutex
	conn   net.Conn // the broker connection, once dialled

	reqs    chan paho.Message // requests waiting for the worker
	mu      sync.Mutex
	working bool // the worker runs
	stopped bool // no worker starts any more
	wg      sync.WaitGroup
}

// connect makes one connection: dial, CONNECT with the will, CONNACK,
// subscriptions, online true, then NotifyStatus of mqtt.connected.
func (cl *Client) connect(ctx context.Context) (*session, error) {
	server := *cl.cfg.Server
	host, _, _ := net.SplitHostPort(server)
	tlsCfg, err := cl.tlsConfig(host)
	if err != nil {
		return nil, err
	}
	s := &session{
		cl:     cl,
		lostCh: make(chan struct{}),
		reqs:   make(chan paho.Message, DefaultMaxPending),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	o := paho.NewClientOptions()
	o.AddBroker("tcp://" + server) // the scheme is ours to use: see dial
	o.SetClientID(cl.clientID)
	if u := deref(cl.cfg.User); u != "" {
		o.SetUsername(u)
		o.SetPassword(deref(cl.cfg.Pass))
	}
	o.SetProtocolVersion(4) // 3.1.1, never a fall-back to 3.1
	o.SetCleanSession(true)
	o.SetKeepAlive(cl.opts.keepAlive)
	o.SetAutoReconnect(false) // Run reconnects, with section 1's back-off
	o.SetConnectRetry(false)
	o.SetConnectTimeout(cl.opts.connectTimeout)
	o.SetWriteTimeout(cl.opts.writeTimeout)
	o.SetOrderMatters(true) // handlers run on paho's router: onMessage never blocks
	o.SetWill(cl.prefix+"/online", onlineFalse, 1, true)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { s.lost(err) })
	o.SetDefaultPublishHandler(s.onMessage)
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		return s.dial(ctx, u.Host, tlsCfg)
	})
	s.pc = paho.NewClient(o)
	tok := s.pc.Connect()
	// CONNACK is bounded by the connect timeout; ctx ends it sooner.
	stop := context.AfterFunc(ctx, func() {
		if c := s.netConn(); c != nil {
			_ = c.SetDeadline(time.Unix(1, 0))
		}
	})
	<-tok.Done()
	stop()
	if err := tok.Error(); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.setup(); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// dial opens the TCP (and TLS) connection of the session.
func (s *session) dial(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cl.opts.connectTimeout)
	defer cancel()
	conn, err := s.cl.opts.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	s.connMu.Lock()
	s.conn = conn
	s.connMu.Unlock()
	return conn, nil
}

func (s *session) netConn() net.Conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.conn
}

// lost is paho's connection-lost handler: it runs once paho's own
// goroutines of the connection have stopped.
func (s *session) lost(err error) {
	s.lostOnce.Do(func() {
		if err == nil {
			err = errors.New("connection lost")
		}
		s.lostErr = err
		close(s.lostCh)
	})
}

// setup subscribes, publishes online true and tells every channel that
// MQTT is connected.
func (s *session) setup() error {
	cl := s.cl
	filters := map[string]byte{cl.prefix + "/command": 1}
	if cl.cfg.EnableRPC {
		filters[cl.prefix+"/rpc"] = 1
		filters[cl.prefix+"/rpc/#"] = 1
	}
	// One handler for every filter: paho calls each matching route, and
	// <prefix>/rpc/# also matches <prefix>/rpc.
	if err := s.wait(s.pc.SubscribeMultiple(filters, nil)); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	if err := s.publish(cl.prefix+"/online", true, []byte(onlineTrue)); err != nil {
		return fmt.Errorf("publishing online: %w", err)
	}
	cl.setConnected(true)
	if err := cl.c.NotifyStatus(map[string]any{ComponentKey: Status{Connected: true}}); err != nil {
		cl.log.Error("mqtt: NotifyStatus failed", "err", err)
	}
	return nil
}

// wait waits for tok, at most the write timeout, or until the connection
// is lost.
func (s *session) wait(tok paho.Token) error {
	t := time.NewTimer(s.cl.opts.writeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-s.lostCh:
		return s.lostErr
	case <-t.C:
		return errors.New("no acknowledgement within the write timeout")
	}
}

// publish publishes payload at QoS 1 and waits for its PUBACK.
func (s *session) publish(topic string, retained bool, payload []byte) error {
	return s.wait(s.pc.Publish(topic, 1, retained, payload))
}

// serve publishes notifications until ctx ends (a clean stop: nil) or the
// connection is lost (its error).
func (s *session) serve(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil
		case <-s.lostCh:
			s.down()
			return s.lostErr
		case <-s.cl.queue.ready:
			for ctx.Err() == nil {
				n, ok := s.cl.queue.pop()
				if !ok {
					break
				}
				if err := s.publishNote(n); err != nil {
					s.cl.queue.pushFront(n)
					break
				}
			}
		}
	}
}

// publishNote publishes one notification: the frame on <prefix>/events/rpc
// (rpc_ntf) and, for NotifyStatus, the whole status of each component it
// names on <prefix>/status/<key> (status_ntf).
func (s *session) publishNote(n note) error {
	cl := s.cl
	if cl.cfg.RPCNtf {
		fr := frame.AppendNotification(nil, cl.c.ID(), cl.prefix+"/events", n.method, n.params)
		if err := s.publish(cl.prefix+"/events/rpc", false, fr); err != nil {
			return err
		}
	}
	if !cl.cfg.StatusNtf || n.method != "NotifyStatus" {
		return nil
	}
	var delta map[string]json.RawMessage
	if err := json.Unmarshal(n.params, &delta); err != nil {
		return nil // the component encodes its params: cannot happen
	}
	keys := make([]string, 0, len(delta))
	for k, v := range delta {
		if k != "ts" && string(v) != "null" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return s.publishStatus(keys)
}

// publishStatus publishes the whole status of each of keys.
func (s *session) publishStatus(keys []string) error {
	for _, k := range keys {
		st, ok := s.cl.statusOf(k)
		if !ok {
			continue
		}
		if err := s.publish(s.cl.prefix+"/status/"+k, false, st); err != nil {
			return err
		}
	}
	return nil
}

// statusOf is the whole status of component key: the client's own for
// mqtt, else WithStatus's.
func (cl *Client) statusOf(key string) (json.RawMessage, bool) {
	if key == ComponentKey {
		b, _ := json.Marshal(cl.Status())
		return b, true
	}
	if cl.opts.status == nil || !validTopicLevel(key) {
		return nil, false
	}
	st, err := cl.opts.status.Status(key)
	if err != nil {
		cl.log.Debug("mqtt: no status to publish", "key", key, "err", err)
		return nil, false
	}
	return st, true
}

// allKeys are the components status_update publishes.
func (cl *Client) allKeys() []string {
	if cl.opts.status == nil {
		return []string{ComponentKey}
	}
	keys := cl.opts.status.Keys()
	if !slices.Contains(keys, ComponentKey) {
		keys = append(keys[:len(keys):len(keys)], ComponentKey)
	}
	return keys
}

// onMessage runs on paho's router for each message on our topics. It must
// not block: the request waits for the worker, or is dropped when
// DefaultMaxPending already wait.
func (s *session) onMessage(_ paho.Client, m paho.Message) {
	select {
	case s.reqs <- m:
	default:
		s.cl.log.Debug("mqtt: request dropped: too many waiting", "topic", m.Topic())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.working || s.stopped {
		return
	}
	s.working = true
	s.wg.Add(1)
	go s.work()
}

// work serves waiting requests one after the other, as the firmware
// does, and ends when none is left: an idle client has no worker.
func (s *session) work() {
	defer s.wg.Done()
	for {
		select {
		case m := <-s.reqs:
			if s.ctx.Err() != nil {
				continue // stopping: drain without serving
			}
			s.handle(m)
			continue
		default:
		}
		s.mu.Lock()
		if len(s.reqs) == 0 || s.stopped {
			s.working = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// handle serves one message: a request on <prefix>/rpc[/…] or a command.
func (s *session) handle(m paho.Message) {
	cl := s.cl
	if m.Topic() == cl.prefix+"/command" {
		if strings.TrimSpace(string(m.Payload())) != statusUpdate {
			cl.log.Debug("mqtt: unknown command ignored", "len", len(m.Payload()))
			return
		}
		if err := s.publishStatus(cl.allKeys()); err != nil {
			cl.log.Debug("mqtt: status_update not published", "err", err)
		}
		return
	}
	err := cl.c.ServeFrame(s.ctx, shellyws.ChannelMQTT, m.Payload(), func(dst string, resp []byte) {
		if !validTopic(dst) {
			// No src (or one no topic can be made of): executed, not
			// answered, as the firmware base does.
			cl.log.Debug("mqtt: request without a usable src not answered")
			return
		}
		if err := s.publish(dst+"/rpc", false, resp); err != nil {
			cl.log.Debug("mqtt: reply not published", "err", err)
		}
	})
	if err != nil {
		cl.log.Debug("mqtt: message dropped", "topic", m.Topic(), "err", err)
	}
}

// validTopic reports whether a topic may be published to: not empty, no
// wildcard, no NUL (a broker disconnects a client that publishes there).
func validTopic(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00") && len(t) < 1<<15
}

func validTopicLevel(k string) bool { return validTopic(k) && !strings.Contains(k, "/") }

// setConnected records whether the client is connected, and bounds the
// queue of notifications to match: DefaultQueue while connected,
// DefaultOfflineQueue while not.
func (cl *Client) setConnected(on bool) {
	cl.connected.Store(on)
	if on {
		cl.queue.setLimit(DefaultQueue)
	} else {
		cl.queue.setLimit(DefaultOfflineQueue)
	}
}

// stopWorker stops the worker and waits for it.
func (s *session) stopWorker() {
	s.cancel()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
}

// stop ends the session cleanly: online false (retained), then DISCONNECT.
func (s *session) stop() {
	s.stopWorker()
	if err := s.publish(s.cl.prefix+"/online", true, []byte(onlineFalse)); err != nil {
		s.cl.log.Debug("mqtt: online false not published", "err", err)
	}
	s.cl.setConnected(false)
	// Disconnect returns once paho's goroutines have stopped, or after
	// the quiesce; closing the socket then ends what is left.
	s.pc.Disconnect(uint(s.cl.opts.writeTimeout / time.Millisecond))
	if c := s.netConn(); c != nil {
		_ = c.Close()
	}
}

// down handles a connection paho reported lost: its goroutines are gone.
func (s *session) down() {
	s.stopWorker()
	s.cl.setConnected(false)
	if err := s.cl.c.NotifyStatus(map[string]any{ComponentKey: Status{Connected: false}}); err != nil {
		s.cl.log.Error("mqtt: NotifyStatus failed", "err", err)
	}
}

// kill drops a connection that failed during setup. paho reports no loss
// of a socket closed here, so it is told to disconnect, which stops its
// goroutines (at once if it already saw the connection die).
func (s *session) kill() {
	s.stopWorker()
	select {
	case <-s.lostCh: // paho's goroutines are gone
	default:
		s.pc.Disconnect(uint(s.cl.opts.writeTimeout / time.Millisecond))
	}
	if c := s.netConn(); c != nil {
		_ = c.Close()
	}
}

// tlsConfig is the TLS of ssl_ca as section 1 says; nil for plain TCP.
func (cl *Client) tlsConfig(host string) (*tls.Config, error) {
	if cl.cfg.SSLCA == nil {
		return nil, nil
	}
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if err := sslca.Apply(c, *cl.cfg.SSLCA, cl.opts.rootCAs, cl.opts.userCA); err != nil {
		return nil, err
	}
	return c, nil
}
