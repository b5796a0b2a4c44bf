package shellyws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/frame"
)

// The encoding of a FuzzConnection input: frames separated by fuzzSep (a
// byte that never occurs in UTF-8 text); a frame that starts with
// fuzzBinary is sent as a binary message, the others as text.
const (
	fuzzSep    = 0xff
	fuzzBinary = 0xfe
	// fuzzMaxFrames bounds the frames of one input, to keep executions fast.
	fuzzMaxFrames = 64
	// fuzzWait bounds each wait for the device.
	fuzzWait = 10 * time.Second
)

// fuzzHarness is one device connected over loopback to a server the fuzz
// target drives, kept for every input of a fuzz worker.
type fuzzHarness struct {
	conn    *websocket.Conn
	frames  chan []byte
	readErr chan error
	probes  int
	close   func()
}

func newFuzzHarness(tb testing.TB) *fuzzHarness {
	conns := make(chan *websocket.Conn, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{shellyws.Subprotocol}})
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		select {
		case conns <- c:
		default:
			c.Close(websocket.StatusTryAgainLater, "one connection only")
		}
		<-release
	}))
	mux := shellyws.NewMux()
	mux.HandleFunc("Echo.Params", func(_ context.Context, req *shellyws.Request) (any, error) {
		return req.Params, nil
	})
	mux.HandleFunc("Fail.Panic", func(context.Context, *shellyws.Request) (any, error) {
		panic("a handler bug")
	})
	dev, err := shellyws.New(testDeviceID,
		shellyws.WithConfigStore(shellyws.NewMemoryStore(enabledConfig("ws"+strings.TrimPrefix(srv.URL, "http")))),
		shellyws.WithDispatcher(mux),
		// One request at a time: answers come back in request order, so
		// everything an input provokes arrives before the probe's answer.
		shellyws.WithMaxInFlight(1))
	if err != nil {
		tb.Fatal(err)
	}
	dev.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { dev.Run(ctx); close(runDone) }()

	h := &fuzzHarness{frames: make(chan []byte, 1024), readErr: make(chan error, 1)}
	select {
	case h.conn = <-conns:
	case <-time.After(fuzzWait):
		tb.Fatal("the device never connected")
	}
	readDone := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_, data, err := h.conn.Read(context.Background())
			if err != nil {
				h.readErr <- err
				return
			}
			select {
			case h.frames <- data:
			case <-quit:
				return
			}
		}
	}()
	h.close = func() {
		cancel()
		<-runDone
		close(quit)
		h.conn.CloseNow()
		<-readDone
		close(release)
		srv.Close()
	}
	// The first frame of the connection is NotifyFullStatus.
	first, err := h.next()
	if err != nil {
		h.close()
		tb.Fatal(err)
	}
	var n struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(first, &n) != nil || n.ID != nil || n.Method != methodNotifyFullStatus {
		h.close()
		tb.Fatalf("first frame %q is not NotifyFullStatus", first)
	}
	return h
}

func (h *fuzzHarness) next() ([]byte, error) {
	select {
	case f := <-h.frames:
		return f, nil
	case err := <-h.readErr:
		h.readErr <- err
		return nil, fmt.Errorf("the device's connection was lost: %w", err)
	case <-time.After(fuzzWait):
		return nil, errors.New("the device stopped answering")
	}
}

// splitFuzzInput turns an input into messages.
func splitFuzzInput(data []byte) (msgs [][]byte, binary []bool) {
	for i, part := range bytes.Split(data, []byte{fuzzSep}) {
		if i == fuzzMaxFrames {
			break
		}
		if len(part) > 0 && part[0] == fuzzBinary {
			msgs, binary = append(msgs, part[1:]), append(binary, true)
			continue
		}
		msgs, binary = append(msgs, part), append(binary, false)
	}
	return msgs, binary
}

// FuzzConnection feeds arbitrary frame sequences to a connected device over a
// real loopback websocket and checks the device never answers what it must
// not (a frame without a valid id, a binary message), answers every request
// that has one (with -103 when its method is not a non-empty string) exactly once and in order, never sends anything else, never
// panics, and keeps answering a valid request afterwards on the same
// connection. The seed corpus is in testdata/fuzz/FuzzConnection.
func FuzzConnection(f *testing.F) {
	h := newFuzzHarness(f)
	f.Cleanup(h.close)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, binary := splitFuzzInput(data)
		var want [][]byte // ids the device must echo, in order
		for i, m := range msgs {
			typ := websocket.MessageText
			if binary[i] {
				typ = websocket.MessageBinary
			} else if req, err := frame.Decode(m); (err == nil || errors.Is(err, frame.ErrBadMethod)) && req.ID != nil {
				want = append(want, req.ID) // a bad method with an id is answered -103
			}
			ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
			err := h.conn.Write(ctx, typ, m)
			cancel()
			if err != nil {
				t.Fatalf("writing frame %d: %v", i, err)
			}
		}
		// Every answer must carry an id the server sent, as a number or string.
		for _, id := range want {
			if c := id[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
				t.Fatalf("the decoder accepted id %q", id)
			}
		}
		h.probes++
		probeID := fmt.Sprintf(`"fuzz-probe-%d"`, h.probes)
		want = append(want, []byte(probeID))
		ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
		err := h.conn.Write(ctx, websocket.MessageText, []byte(`{"id":`+probeID+`,"src":"fuzz","method":"Ws.GetStatus"}`))
		cancel()
		if err != nil {
			t.Fatalf("writing the probe: %v", err)
		}
		for i, id := range want {
			got, err := h.next()
			if err != nil {
				t.Fatalf("waiting for answer %d (id %s): %v", i, id, err)
			}
			var resp map[string]json.RawMessage
			if err := json.Unmarshal(got, &resp); err != nil {
				t.Fatalf("the device sent %q, not a JSON object: %v", got, err)
			}
			if !bytes.Equal(resp["id"], id) {
				t.Fatalf("answer %d: want id %s, got frame %q", i, id, got)
			}
			var src string
			if json.Unmarshal(resp["src"], &src) != nil || src != testDeviceID {
				t.Fatalf("answer %q: src is not the device id", got)
			}
			_, hasResult := resp["result"]
			_, hasError := resp["error"]
			if hasResult == hasError {
				t.Fatalf("answer %q: needs exactly one of result and error", got)
			}
			if _, ok := resp["method"]; ok {
				t.Fatalf("answer %q has a method", got)
			}
			if i == len(want)-1 && string(resp["result"]) != `{"connected":true}` {
				t.Fatalf("probe answered %q", got)
			}
		}
		select {
		case extra := <-h.frames:
			t.Fatalf("the device sent %q after the probe's answer", extra)
		default:
		}
	})
}
