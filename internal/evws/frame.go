package evws

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/shellyws/shellyws/internal/bpool"
)

// opcode is a frame's opcode (RFC 6455 section 5.2).
type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xa
)

// maxControlPayload is the largest payload of a control frame.
const maxControlPayload = 125

// header is a frame header as read.
type header struct {
	fin    bool
	rsv    byte // the three reserved bits; no extension is negotiated, so 0
	op     opcode
	masked bool
	length uint64
}

// parseHeader reads the header at the start of b and returns its length,
// or 0 while b holds only part of it.
func parseHeader(b []byte) (h header, n int) {
	if len(b) < 2 {
		return h, 0
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.op = opcode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0
		}
		h.length = binary.BigEndian.Uint64(b[2:])
		n = 10
	default:
		h.length = uint64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0
		}
		n += 4
	}
	return h, n
}

// appendFrame appends a final client frame of op carrying payload, masked
// with a fresh key as RFC 6455 section 5.3 requires of a client.
func appendFrame(dst []byte, op opcode, payload []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	key := rand.Uint32() // runtime ChaCha8: unpredictable, as 5.3 asks
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	dst = append(dst, payload...)
	mask(dst[start:], key)
	return dst
}

// mask XORs b with key, the first key byte on b[0] (RFC 6455 5.3).
func mask(b []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k8)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// closePayload is the payload of a close frame with code and reason; a
// zero code gives an empty payload.
func closePayload(dst []byte, code StatusCode, reason string) []byte {
	if code == 0 {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	return append(dst, reason...)
}

// validCloseCode reports whether a peer may send code (RFC 6455 7.4).
func validCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// maxKeptBuf is the largest buffer the pool keeps.
const maxKeptBuf = bpool.Large

// getBuf and putBuf take and give back buffers of the module's one pool.
func getBuf() *[]byte { return bpool.Get() }

func putBuf(bp *[]byte) { bpool.Put(bp) }
