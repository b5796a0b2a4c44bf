package evws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"github.com/coder/websocket"
)

// The round-trip benchmarks: a coder/websocket server in the process sends
// a Ws.GetStatus request and waits for it to come back, one at a time or
// 64 in flight, to a client that echoes each message: coder/websocket's
// reader goroutine; evws with the echo passed to Conn.Go (evws), written
// from a new goroutine (evws-spawn), or written in Message (evws-inline,
// not allowed of a handler: it prices the handoff); evws read by a
// goroutine per connection (evws-goroutine).
//
//	go test ./internal/evws -run '^$' -bench 'RoundTrip|Pipelined' -count 5

func benchServer(b *testing.B) (url string, conns chan *websocket.Conn) {
	conns = make(chan *websocket.Conn, 1)
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"json-rpc"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		conns <- c
		<-quit
	}))
	b.Cleanup(func() {
		close(quit)
		srv.Close()
	})
	return "ws" + srv.URL[len("http"):] + "/", conns
}

// goEcho writes every message back from work passed to Conn.Go, as a
// request is served.
type goEcho struct{ closed chan struct{} }

func (goEcho) Message(c *Conn, text bool, data []byte) {
	m := slices.Clone(data)
	c.Go(func() { c.Write(m) })
}

// spawnEcho writes every message back from a new goroutine.
type spawnEcho struct{ goEcho }

func (spawnEcho) Message(c *Conn, text bool, data []byte) {
	m := slices.Clone(data)
	go c.Write(m)
}

func (e goEcho) Closed(*Conn, error) { close(e.closed) }

// inlineEcho writes on the reading goroutine: not allowed for handlers,
// measured only to price the handoff.
type inlineEcho struct{ goEcho }

func (inlineEcho) Message(c *Conn, text bool, data []byte) { c.Write(data) }

// benchClient connects impl to url and returns a func that ends it.
func benchClient(b *testing.B, impl, url string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	switch impl {
	case "coder":
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"json-rpc"}})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				typ, m, err := c.Read(ctx)
				if err != nil {
					return
				}
				if c.Write(ctx, typ, m) != nil {
					return
				}
			}
		}()
		return func() { c.CloseNow(); cancel(); <-done }
	default:
		c, err := Dial(ctx, url, nil, &Options{Subprotocol: "json-rpc", Goroutine: impl == "evws-goroutine"})

		if err != nil {
			b.Fatal(err)
		}
		e := goEcho{closed: make(chan struct{})}
		switch impl {
		case "evws-inline":
			c.Start(inlineEcho{e})
		case "evws-spawn":
			c.Start(spawnEcho{e})
		default:
			c.Start(e)
		}
		return func() { c.Drop(); cancel(); <-e.closed }
	}
}

var benchImpls = []string{"coder", "evws", "evws-spawn", "evws-goroutine", "evws-inline"}

func request(dst []byte, id int) []byte {
	dst = append(dst[:0], `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	return append(dst, `,"src":"bench","method":"Ws.GetStatus"}`...)
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, impl := range benchImpls {
		b.Run(impl, func(b *testing.B) {
			url, conns := benchServer(b)
			stop := benchClient(b, impl, url)
			defer stop()
			s := <-conns
			ctx := context.Background()
			var req []byte
			b.ResetTimer()
			for i := range b.N {
				req = request(req, i)
				if err := s.Write(ctx, websocket.MessageText, req); err != nil {
					b.Fatal(err)
				}
				if _, _, err := s.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPipelined(b *testing.B) {
	const inFlight = 64
	for _, impl := range benchImpls {
		b.Run(impl, func(b *testing.B) {
			url, conns := benchServer(b)
			stop := benchClient(b, impl, url)
			defer stop()
			s := <-conns
			ctx := context.Background()
			slots := make(chan struct{}, inFlight)
			done := make(chan error, 1)
			b.ResetTimer()
			go func() {
				var req []byte
				for i := range b.N {
					slots <- struct{}{}
					req = request(req, i)
					if err := s.Write(ctx, websocket.MessageText, req); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if _, _, err := s.Read(ctx); err != nil {
					b.Fatal(err)
				}
				<-slots
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
