package testkit

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientFrame masks payload under FrameHeader as a client must.
func clientFrame(op byte, payload []byte) []byte {
	h := FrameHeader(true, op, uint64(len(payload)))
	h[1] |= 0x80
	mask := [4]byte{1, 2, 3, 4}
	out := append(h, mask[:]...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}

func TestReadClientFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		op, got, err := ReadClientFrame(bufio.NewReader(bytes.NewReader(clientFrame(OpText, payload))))
		require.NoError(t, err, "%d bytes", n)
		assert.EqualValues(t, OpText, op)
		assert.Equal(t, payload, got, "%d bytes", n)
	}
	_, _, err := ReadClientFrame(bufio.NewReader(bytes.NewReader(append(FrameHeader(true, OpText, 2), "hi"...))))
	assert.ErrorContains(t, err, "unmasked")
	_, _, err = ReadClientFrame(bufio.NewReader(bytes.NewReader(clientFrame(OpText, make([]byte, maxClientFrame+1)))))
	assert.ErrorContains(t, err, "client frame of")
}

func TestReadCloseCode(t *testing.T) {
	stream := append(clientFrame(OpText, []byte("a")), clientFrame(OpClose, []byte{0x03, 0xf4})...)
	assert.Equal(t, 1012, ReadCloseCode(bufio.NewReader(bytes.NewReader(stream))))
	assert.Equal(t, 1005, ReadCloseCode(bufio.NewReader(bytes.NewReader(clientFrame(OpClose, nil)))))
	assert.Equal(t, -1, ReadCloseCode(bufio.NewReader(bytes.NewReader(clientFrame(OpText, []byte("a"))))))
}

func TestClock(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := NewClock(start)
	due := c.After(time.Second)
	assert.Equal(t, []time.Time{start.Add(time.Second)}, c.Deadlines())
	c.Advance(999 * time.Millisecond)
	select {
	case <-due:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Millisecond)
	assert.Equal(t, start.Add(time.Second), <-due)
	assert.Empty(t, c.Deadlines())
	assert.Equal(t, start.Add(time.Second), c.Now())
	assert.Equal(t, c.Now(), <-c.After(0), "no wait: at once")
}

func TestBufferLines(t *testing.T) {
	var b Buffer
	_, _ = b.Write([]byte("level=WARN a b\nlevel=INFO a\n"))
	assert.Equal(t, []string{"level=WARN a b"}, b.Lines("a", "b"))
	assert.Len(t, b.Lines("a"), 2)
	assert.Empty(t, b.Lines("c"))
}
