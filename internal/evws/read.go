package evws

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/coder/websocket"
)

// input takes bytes read from the server, on the reading goroutine: it
// delivers every complete frame and keeps the rest (an incomplete frame,
// or frames not yet delivered while paused) until more arrive. A frame
// that arrives whole is delivered from b without a copy.
func (c *Conn) input(b []byte) {
	if c.pending != nil {
		*c.pending = append(*c.pending, b...)
		n := c.process(*c.pending)
		rest := len(*c.pending) - n
		if rest == 0 || c.gone.Load() {
			putBuf(c.pending)
			c.pending = nil
			return
		}
		copy(*c.pending, (*c.pending)[n:])
		*c.pending = (*c.pending)[:rest]
		return
	}
	n := c.process(b)
	if n < len(b) && !c.gone.Load() {
		c.pending = getBuf()
		*c.pending = append(*c.pending, b[n:]...)
	}
}

// process delivers the complete frames at the start of b and returns how
// many bytes it consumed; all of them once the connection ended.
func (c *Conn) process(b []byte) int {
	off := 0
	for !c.paused.Load() {
		if c.discard.Load() {
			return len(b)
		}
		h, hn := parseHeader(b[off:])
		if hn == 0 {
			return off
		}
		if !c.check(h) {
			return len(b)
		}
		if uint64(len(b)-off-hn) < h.length {
			return off
		}
		end := off + hn + int(h.length)
		payload := b[off+hn : end]
		off = end
		if !c.frame(h, payload) {
			return len(b)
		}
	}
	return off
}

// check refuses a frame as soon as its header is read, before its payload
// is buffered: a frame announcing a gigabyte is refused at once.
func (c *Conn) check(h header) bool {
	protocol := func(why string) bool {
		c.failWith(fmt.Errorf("%w: %s", ErrProtocol, why), websocket.StatusProtocolError, why)
		return false
	}
	switch {
	case h.rsv != 0:
		return protocol("reserved bits set")
	case h.masked:
		return protocol("masked server frame")
	}
	switch h.op {
	case opText, opBinary:
		if c.msg != nil {
			return protocol("new message inside a fragmented one")
		}
	case opContinuation:
		if c.msg == nil {
			return protocol("continuation without a message")
		}
	case opClose, opPing, opPong:
		if !h.fin || h.length > maxControlPayload {
			return protocol("bad control frame")
		}
		return true
	default:
		return protocol("unknown opcode")
	}
	total := h.length
	if c.msg != nil {
		total += uint64(len(*c.msg))
	}
	if limit := c.o.readLimit(); h.length > uint64(limit) || total > uint64(limit) {
		reason := fmt.Sprintf("read limited at %d bytes", limit)
		c.failWith(fmt.Errorf("%w: %s", websocket.ErrMessageTooBig, reason), websocket.StatusMessageTooBig, reason)
		return false
	}
	return true
}

// frame handles one complete frame and reports whether to go on.
func (c *Conn) frame(h header, payload []byte) bool {
	switch h.op {
	case opText, opBinary:
		if !h.fin {
			c.msg, c.msgOp = getBuf(), h.op
			*c.msg = append(*c.msg, payload...)
			return true
		}
		c.deliver(h.op, payload)
	case opContinuation:
		*c.msg = append(*c.msg, payload...)
		if h.fin {
			m := c.msg
			c.msg = nil
			c.deliver(c.msgOp, *m)
			putBuf(m)
		}
	case opPing:
		bp := getBuf()
		*bp = appendFrame(*bp, opPong, payload)
		c.owe(&c.owedPong, bp, c.p == nil)
	case opPong:
		// Any arrival proves the connection alive; lastRead has it.
	case opClose:
		code, reason := StatusCode(websocket.StatusNoStatusRcvd), ""
		switch {
		case len(payload) == 1:
			c.failWith(fmt.Errorf("%w: close payload of 1 byte", ErrProtocol), websocket.StatusProtocolError, "bad close frame")
			return false
		case len(payload) >= 2:
			code, reason = StatusCode(binary.BigEndian.Uint16(payload)), string(payload[2:])
			if !validCloseCode(code) {
				c.failWith(fmt.Errorf("%w: close code %d", ErrProtocol, code), websocket.StatusProtocolError, "bad close code")
				return false
			}
		}
		echo := code
		if code == websocket.StatusNoStatusRcvd {
			echo = 0 // an empty close is answered with an empty one
		}
		c.failWith(CloseError{Code: code, Reason: reason}, echo, "")
		return false
	}
	return !c.gone.Load()
}

// deliver hands a message to the handler unless the connection is ending.
func (c *Conn) deliver(op opcode, data []byte) {
	c.mu.Lock()
	ending := c.ending
	c.mu.Unlock()
	if !ending {
		c.h.Message(c, op == opText, data)
	}
}

// releaseRead drops the read state once the connection is gone.
func (c *Conn) releaseRead() {
	putBuf(c.pending)
	putBuf(c.msg)
	c.pending, c.msg = nil, nil
}

// readLoop reads a connection the poller does not: on its own goroutine,
// as coder/websocket does, with the same framing and callbacks.
func (c *Conn) readLoop() {
	var r io.Reader = c.nc
	if c.tc != nil {
		r = c.tc
	}
	buf := make([]byte, 4096)
	if c.pending != nil {
		c.input(nil) // what came with the handshake response
	}
	for !c.gone.Load() {
		if c.paused.Load() {
			select {
			case <-c.resumeC:
				if c.pending != nil && !c.paused.Load() {
					c.input(nil) // what arrived before the pause
				}
			case <-c.downCh:
			}
			continue
		}
		n, err := r.Read(buf)
		if n > 0 {
			c.lastRead.Store(mono())
			c.input(buf[:n])
		}
		if err != nil {
			c.fail(err)
		}
	}
	<-c.downCh
	c.releaseRead()
	c.h.Closed(c, c.endCause())
}
