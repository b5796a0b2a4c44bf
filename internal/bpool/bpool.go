// Package bpool is the module's one pool of byte buffers: the frames the
// connections write, the messages they put together, the datagrams they
// read. A buffer is taken when bytes arrive or leave and given back at
// once, so an idle connection holds none, and a buffer one use grew serves
// the next.
package bpool

import "sync"

// Large is the size of the large class: room for any UDP datagram (65,507
// bytes) and one more to detect a larger one.
const Large = 64 << 10

// maxKept bounds what is kept: a buffer grown past it by a huge frame goes
// to the garbage collector, not to the pool.
const maxKept = Large

// Buffers come in two classes, so that a frame of a few hundred bytes does
// not pin 64 KiB and a datagram read does not grow a small buffer each time.
var (
	small = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	large = sync.Pool{New: func() any { b := make([]byte, 0, Large); return &b }}
)

// Get returns an empty buffer. The pointer travels with it back to Put, so
// recycling it allocates nothing.
func Get() *[]byte {
	bp := small.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// GetLarge returns a buffer of length Large.
func GetLarge() *[]byte {
	bp := large.Get().(*[]byte)
	*bp = (*bp)[:Large]
	return bp
}

// Put gives bp back for reuse; nil and buffers larger than 64 KiB are
// left to the garbage collector.
func Put(bp *[]byte) {
	if bp == nil {
		return
	}
	switch c := cap(*bp); {
	case c > maxKept:
	case c == Large:
		large.Put(bp)
	default:
		small.Put(bp)
	}
}
