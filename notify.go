package shellyws

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shellyws/shellyws/internal/frame"
)

// Notification methods a device sends.
const (
	methodNotifyFullStatus = "NotifyFullStatus"
	methodNotifyStatus     = "NotifyStatus"
	methodNotifyEvent      = "NotifyEvent"
)

// outboundDst is the dst of every notification on the outbound channel;
// matterbridge-shelly drops anything else.
const outboundDst = "ws"

// Event is one entry of a NotifyEvent's "events" array.
type Event struct {
	// Component is the component key, e.g. "input:0" or "sys".
	Component string
	// ID is the component's id; nil for singletons such as sys, whose
	// events carry no "id".
	ID *int
	// Event is the event name, e.g. "single_push" or "config_changed".
	Event string
	// TS is when it happened; zero means now.
	TS time.Time
	// Fields are extra keys of the event, e.g. "cfg_rev" and
	// "restart_required" of config_changed.
	Fields map[string]any
}

// errEmptyKey refuses a status keyed by "": a key names a component.
var errEmptyKey = errors.New(`a status key is empty; keys name components, e.g. "switch:0"`)

// notification is a queued notification: its method and encoded params.
type notification struct {
	method string
	params []byte
}

// notifyQueue is the bounded queue of notifications waiting for a
// connection. When full it drops the oldest, as the firmware base does.
type notifyQueue struct {
	mu      sync.Mutex
	size    int
	items   []notification // ring buffer, allocated at the first push
	head    int
	n       int
	dropped uint64
}

func newNotifyQueue(size int) *notifyQueue { return &notifyQueue{size: size} }

func (q *notifyQueue) push(n notification) {
	q.mu.Lock()
	if q.size == 0 {
		q.dropped++
		q.mu.Unlock()
		return
	}
	if q.items == nil {
		q.items = make([]notification, q.size)
	}
	if q.n == len(q.items) {
		q.items[q.head] = notification{}
		q.head = (q.head + 1) % len(q.items)
		q.n--
		q.dropped++
	}
	q.items[(q.head+q.n)%len(q.items)] = n
	q.n++
	q.mu.Unlock()
}

// pushFront puts n back at the head, where pop finds it first. If the queue
// filled meanwhile, n is the one dropped: it is the oldest.
func (q *notifyQueue) pushFront(n notification) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == q.size {
		q.dropped++
		return
	}
	q.head = (q.head - 1 + len(q.items)) % len(q.items)
	q.items[q.head] = n
	q.n++
}

// pop removes and returns the oldest notification.
func (q *notifyQueue) pop() (notification, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return notification{}, false
	}
	n := q.items[q.head]
	q.items[q.head] = notification{}
	q.head = (q.head + 1) % len(q.items)
	q.n--
	return n, true
}

// clear empties the queue, as a reboot empties the device's RAM.
func (q *notifyQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 {
		q.items[q.head] = notification{}
		q.head = (q.head + 1) % len(q.items)
		q.n--
	}
}

func (q *notifyQueue) stats() (queued int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}

// NotifyStatus sends a NotifyStatus with the changed fields of components,
// keyed like Shelly.GetStatus: {"switch:0": {"output": true, "source":
// "WS_in"}}. A nil value tells the server the component is gone. The delta
// is encoded now, so the caller may reuse the map; "ts" is added. It never
// blocks: the notification is queued (see WithQueueSize) and sent after the
// NotifyFullStatus of the current or next connection. A nil or empty delta,
// one whose only key is "ts", or one with an empty key is an error and
// nothing is sent.
//
// Delivery is at most once. A notification written to the socket before the
// device noticed that its server vanished (the kernel accepted it; nothing
// acknowledges frames) is lost with the connection, and not counted in
// Stats.Dropped. Once the connection's reader has seen its end, nothing more
// is written to it: notifications stay queued for the next connection, and
// one whose write failed is put back. A test that stops its server and then
// publishes waits first until the state leaves StateConnected
// (WaitForStateChange), as the example of WaitForStateChange shows.
func (c *Component) NotifyStatus(delta map[string]any) error {
	if _, onlyTS := delta["ts"]; len(delta) == 0 || (onlyTS && len(delta) == 1) {
		return errors.New("shellyws: NotifyStatus: no component changed")
	}
	if _, empty := delta[""]; empty {
		return fmt.Errorf("shellyws: NotifyStatus: %w", errEmptyKey)
	}
	params, err := paramsWithTS(c.opts.now(), delta)
	if err != nil {
		return fmt.Errorf("shellyws: NotifyStatus: %w", err)
	}
	c.publish(notification{method: methodNotifyStatus, params: params})
	return nil
}

// NotifyEvent sends a NotifyEvent with events; "ts" is added to the
// notification and to each event that has none. It queues, and is delivered
// at most once, like NotifyStatus.
// No events, or an event without Component or Event, is an error and
// nothing is sent.
func (c *Component) NotifyEvent(events ...Event) error {
	if len(events) == 0 {
		return errors.New("shellyws: NotifyEvent: no events")
	}
	for i, e := range events {
		if e.Component == "" || e.Event == "" {
			return fmt.Errorf("shellyws: NotifyEvent: event %d needs both Component and Event (got %q, %q)", i, e.Component, e.Event)
		}
	}
	now := c.opts.now()
	list := make([]map[string]any, 0, len(events))
	for _, e := range events {
		m := make(map[string]any, len(e.Fields)+4)
		maps.Copy(m, e.Fields)
		m["component"] = e.Component
		if e.ID != nil {
			m["id"] = *e.ID
		}
		m["event"] = e.Event
		ts := e.TS
		if ts.IsZero() {
			ts = now
		}
		m["ts"] = json.RawMessage(appendTS(nil, ts))
		list = append(list, m)
	}
	params, err := paramsWithTS(now, map[string]any{"events": list})
	if err != nil {
		return fmt.Errorf("shellyws: NotifyEvent: %w", err)
	}
	c.publish(notification{method: methodNotifyEvent, params: params})
	return nil
}

func (c *Component) publish(n notification) {
	c.queue.push(n)
	if p := c.live.Load(); p != nil {
		p.kick()
	}
	for _, sub := range c.subscribers() {
		sub(n.method, n.params)
	}
}

// appendTS appends t as Unix seconds with two decimals, as devices send it.
func appendTS(buf []byte, t time.Time) []byte {
	return strconv.AppendFloat(buf, float64(t.UnixMilli())/1000, 'f', 2, 64)
}

// paramsWithTS encodes {"ts": now, ...fields} with the keys of fields sorted.
func paramsWithTS(now time.Time, fields map[string]any) ([]byte, error) {
	buf := make([]byte, 0, 64+32*len(fields))
	buf = append(buf, `{"ts":`...)
	buf = appendTS(buf, now)
	keys := maps.Keys(fields)
	if len(fields) > 1 {
		keys = slices.Values(slices.Sorted(keys))
	}
	for k := range keys {
		if k == "ts" {
			continue
		}
		v, err := json.Marshal(fields[k])
		if err != nil {
			return nil, fmt.Errorf("encoding %q: %w", k, err)
		}
		buf = append(buf, ',')
		buf = frame.AppendString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, v...)
	}
	return append(buf, '}'), nil
}
