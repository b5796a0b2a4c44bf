// Package testkit holds what the module's tests share across packages: a
// clock the test moves, a buffer many goroutines write to, and a reader
// of the raw frames a websocket client sends. Only tests import it.
package testkit

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Clock is a clock the test moves: Now stands still until Advance, which
// also fires the channels of After now due.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After is time.After on this clock: its channel gets the deadline once
// Advance reaches it.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock by d and fires the timers now due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			keep = append(keep, w)
			continue
		}
		w.ch <- w.at
	}
	c.waiters = keep
}

// Deadlines lists the deadlines of the timers not yet fired.
func (c *Clock) Deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, w := range c.waiters {
		out = append(out, w.at)
	}
	return out
}

// Buffer collects what is written to it, from any goroutine: a logger's
// or a process's output.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the lines written so far that hold every one of subs.
func (b *Buffer) Lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// Opcodes of RFC 6455 frames.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// websocketGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptUpgrade answers a websocket client's upgrade request on c by hand,
// with the json-rpc subprotocol and extra written right behind the
// response, and returns the reader of what the client sends next.
func AcceptUpgrade(c net.Conn, extra []byte) (*bufio.Reader, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + websocketGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: json-rpc\r\n\r\n"
	_, err = c.Write(append([]byte(resp), extra...))
	return br, err
}

// FrameHeader is the header of an unmasked (server) frame claiming length
// bytes of payload; a test may follow it with fewer, or none.
func FrameHeader(fin bool, opcode byte, length uint64) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	switch {
	case length < 126:
		return []byte{b0, byte(length)}
	case length <= 0xffff:
		return binary.BigEndian.AppendUint16([]byte{b0, 126}, uint16(length))
	default:
		return binary.BigEndian.AppendUint64([]byte{b0, 127}, length)
	}
}

// maxClientFrame bounds what ReadClientFrame takes: the devices under test
// never send more.
const maxClientFrame = 1 << 20

// ReadClientFrame reads one frame a client sent and returns its opcode and
// unmasked payload. It is independent of the code under test, so tests can
// check what really went on the wire. An unmasked frame, which RFC 6455
// forbids a client, and a payload over 1 MiB are errors.
func ReadClientFrame(br *bufio.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	opcode = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxClientFrame {
		return 0, nil, fmt.Errorf("client frame of %d bytes", n)
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("unmasked client frame") // RFC 6455 5.1
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return opcode, payload, nil
}

// ReadCloseCode reads a client's frames until its close frame and returns
// the close code: 1005 for a close without one, -1 if the connection ended
// without a close frame.
func ReadCloseCode(br *bufio.Reader) int {
	for {
		op, p, err := ReadClientFrame(br)
		if err != nil {
			return -1
		}
		if op == OpClose {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}
