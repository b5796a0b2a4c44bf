package evws

import (
	"net"
	"slices"
	"testing"
	"time"
)

// discardConn is a net.Conn that takes every write and reads nothing.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// collector keeps what a connection delivered.
type collector struct{ msgs []string }

func (c *collector) Message(_ *Conn, text bool, data []byte) {
	c.msgs = append(c.msgs, map[bool]string{true: "t", false: "b"}[text]+string(data))
}
func (*collector) Closed(*Conn, error) {}

// fed is what a connection did with the bytes it was fed.
type fed struct {
	msgs  []string
	cause error // why it ended, nil if it did not
	held  int   // the largest read state it held
}

// feed gives stream to a fresh connection in pieces cut at cuts.
func feed(stream []byte, cuts []int, limit int64) (r fed) {
	col := &collector{}
	c := &Conn{o: &Options{ReadLimit: limit}, nc: discardConn{}, h: col, downCh: make(chan struct{})}
	prev := 0
	for _, cut := range append(slices.Clone(cuts), len(stream)) {
		if cut < prev || cut > len(stream) {
			continue
		}
		c.input(stream[prev:cut])
		prev = cut
		if c.pending != nil {
			r.held = max(r.held, cap(*c.pending))
		}
		if c.msg != nil {
			r.held = max(r.held, cap(*c.msg))
		}
	}
	c.mu.Lock()
	ending := c.ending
	c.mu.Unlock()
	if ending {
		<-c.downCh // a close frame may be on its way out
		r.cause = c.endCause()
	}
	r.msgs = col.msgs
	return r
}

// FuzzInput: however the bytes from the server are cut into reads, the
// connection delivers the same messages and ends the same way, never
// panics, and holds no more than a frame within the read limit.
//
//	go test ./internal/evws -run '^$' -fuzz FuzzInput -fuzztime 30s
func FuzzInput(f *testing.F) {
	f.Add(serverFrame(true, opText, []byte(`{"id":1}`)), 3, 1)
	f.Add(append(serverFrame(false, opText, []byte("ab")), serverFrame(true, opContinuation, []byte("cd"))...), 2, 5)
	f.Add(append(serverFrame(true, opPing, []byte("p")), serverFrame(true, opBinary, make([]byte, 300))...), 7, 2)
	f.Add(serverFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}), 1, 1)
	f.Add([]byte{0x81, 127, 0xff, 0, 0, 0, 0, 0, 0, 0}, 4, 3)
	f.Fuzz(func(t *testing.T, stream []byte, step, phase int) {
		const limit = 1024
		whole := feed(stream, nil, limit)
		var cuts []int
		step = 1 + abs(step)%64
		for i := abs(phase) % step; i < len(stream); i += step {
			cuts = append(cuts, i)
		}
		cut := feed(stream, cuts, limit)
		if !slices.Equal(cut.msgs, whole.msgs) {
			t.Fatalf("cut every %d bytes: delivered %q, whole %q", step, cut.msgs, whole.msgs)
		}
		if errString(cut.cause) != errString(whole.cause) {
			t.Fatalf("cut every %d bytes: ended with %v, whole with %v", step, cut.cause, whole.cause)
		}
		if held := cut.held; held > 2*(limit+14+64)+maxKeptBuf {
			t.Fatalf("held %d bytes of read state with a %d-byte limit", held, limit)
		}
	})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
