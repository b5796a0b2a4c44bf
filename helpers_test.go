package shellyws_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

const testDeviceID = "shellyplus1pm-c049ef8cf4e0"

// The defaults the option docs state and the notification methods of the
// wire, written here as documented, so that a test relying on one also
// checks that the library keeps its word.
const (
	defaultHealthyAfter    = 10 * time.Second // WithHealthyAfter
	defaultMaxInFlight     = 16               // WithMaxInFlight
	defaultMaxClients      = 8                // WithMaxClients
	defaultMaxRequestSize  = 64 << 10         // WithMaxRequestSize
	defaultHTTPIdleTimeout = 10 * time.Second // NewHTTPServer's IdleTimeout

	methodNotifyFullStatus = "NotifyFullStatus"
	methodNotifyStatus     = "NotifyStatus"
	methodNotifyEvent      = "NotifyEvent"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recordingBackoff is a fast exponential backoff that records every delay it
// hands out and how many runs of waits it saw begin (attempt 1: Run's first
// wait, and the first after every reset), so tests can check growth, jitter
// and resets in ms.
type recordingBackoff struct {
	mu     sync.Mutex
	policy func(attempt int) time.Duration
	delays []time.Duration
	resets int
}

func newRecordingBackoff(initial, max time.Duration) *recordingBackoff {
	return &recordingBackoff{policy: shellyws.ExponentialBackoff(initial, max)}
}

func (r *recordingBackoff) delay(attempt int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if attempt == 1 {
		r.resets++
	}
	d := r.policy(attempt)
	r.delays = append(r.delays, d)
	return d
}

func (r *recordingBackoff) snapshot() ([]time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...), r.resets
}

func (r *recordingBackoff) option() shellyws.Option { return shellyws.WithBackoff(r.delay) }

// serverBackoffRecorder is a WithServerBackoff policy that records the
// Retry-After of every call and waits a millisecond.
type serverBackoffRecorder struct {
	mu    sync.Mutex
	calls []time.Duration
}

func (r *serverBackoffRecorder) option() shellyws.Option {
	return shellyws.WithServerBackoff(func(retryAfter time.Duration) time.Duration {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, retryAfter)
		return time.Millisecond
	})
}

func (r *serverBackoffRecorder) snapshot() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.calls...)
}

// fastOptions make reconnects take milliseconds.
func fastOptions() []shellyws.Option {
	return []shellyws.Option{
		shellyws.WithBackoff(shellyws.ExponentialBackoff(time.Millisecond, 20*time.Millisecond)),
		// The server's requests for a longer back-off are honoured in
		// milliseconds too; server_backoff_test.go checks they are made.
		shellyws.WithServerBackoff(func(time.Duration) time.Duration { return time.Millisecond }),
	}
}

// enabledConfig points a device at server.
func enabledConfig(server string) shellyws.Config {
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	cfg.Server = &server
	return cfg
}

// startDevice runs a component until the test ends; Run's return is awaited
// in cleanup, so a leaked goroutine fails the test.
func startDevice(t testing.TB, cfg shellyws.Config, opts ...shellyws.Option) *shellyws.Component {
	t.Helper()
	all := append(fastOptions(), shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
	all = append(all, opts...)
	c, err := shellyws.New(testDeviceID, all...)
	require.NoError(t, err)
	runDevice(t, c)
	return c
}

// acceptConnected accepts the next device connection and reads its opening
// NotifyFullStatus.
func acceptConnected(t testing.TB, ctx context.Context, srv *shellywstest.Server) *shellywstest.Conn {
	t.Helper()
	conn, err := srv.Accept(ctx)
	require.NoError(t, err)
	_, err = conn.ExpectFullStatus(ctx)
	require.NoError(t, err)
	return conn
}

// rawWebsocketServer runs handle for every websocket a device opens to it,
// on loopback, and returns its ws:// URL: for servers that misbehave in ways
// shellywstest does not offer. The connection is dropped when handle
// returns; cleanup waits for every handle, so a handle that blocks must be
// released by a cleanup registered after this call.
func rawWebsocketServer(t testing.TB, handle func(c *websocket.Conn, r *http.Request)) string {
	t.Helper()
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the upgrade, while httptest still tracks the
		// request, so that Close below cannot miss a handler.
		handlers.Add(1)
		defer handlers.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(c, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		handlers.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// runDevice runs c until the test ends and fails it if Run does not return
// cleanly once its context ends.
func runDevice(t testing.TB, c *shellyws.Component) {
	t.Helper()
	shellywstest.StartComponent(t, c)
}

// newFakeClock is an injectable clock (WithClock) that moves only when
// told: nonce lifetimes, lockouts and the healthy time.
func newFakeClock() *testkit.Clock { return testkit.NewClock(time.Unix(1_700_000_000, 0)) }
