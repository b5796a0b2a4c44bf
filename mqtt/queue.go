package mqtt

import "sync"

// note is one notification of the component, waiting to be published.
type note struct {
	method string
	params []byte // shared with the component's other channels: read only
}

// noteQueue is the bounded queue of notifications: at most limit wait,
// the oldest dropped first. The limit is DefaultQueue while connected and
// DefaultOfflineQueue while not, as the firmware base keeps 5.
type noteQueue struct {
	mu      sync.Mutex
	items   []note
	limit   int
	dropped uint64
	ready   chan struct{} // has a value while items wait
}

func newNoteQueue(limit int) *noteQueue {
	return &noteQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push adds n, dropping the oldest beyond the limit. It never blocks.
func (q *noteQueue) push(n note) {
	q.mu.Lock()
	q.items = append(q.items, n)
	q.trimLocked()
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pushFront puts back a notification whose publish failed, unless the
// queue is full: then it is the oldest, and dropped.
func (q *noteQueue) pushFront(n note) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.limit {
		q.dropped++
		return
	}
	q.items = append([]note{n}, q.items...)
}

func (q *noteQueue) pop() (note, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return note{}, false
	}
	n := q.items[0]
	q.items[0] = note{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
	return n, true
}

// setLimit changes the bound, dropping the oldest beyond it.
func (q *noteQueue) setLimit(limit int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limit = limit
	q.trimLocked()
}

func (q *noteQueue) trimLocked() {
	if over := len(q.items) - q.limit; over > 0 {
		clear(q.items[:over])
		q.items = q.items[over:]
		q.dropped += uint64(over)
	}
}
