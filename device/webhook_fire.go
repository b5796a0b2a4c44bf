package device

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/sslca"
)

// Bounds of the requests webhooks send. A device queues at most
// maxHookQueue requests and a process maxHookPending; beyond either, a
// request is dropped and counted. At most hookWorkers requests are in
// flight per process, one per device at a time (so a device's requests go
// out in the order of its events); a worker exists only while requests
// wait, so an idle fleet holds none.
const (
	maxHookQueue   = 20
	maxHookPending = 4096
	hookWorkers    = 16
	// maxHookBody is how much of an answer is read before the connection
	// is closed; the body is discarded.
	maxHookBody = 64 << 10
)

// hookRun is what repeat_period remembers of a hook between its events.
type hookRun struct {
	last    time.Time // the last time it fired
	condWas bool      // the condition at the last event (repeat_period < 0)
}

// hookOutbox is a device's requests waiting to be sent.
type hookOutbox struct {
	jobs      []hookJob
	scheduled bool // in hookSender's ready list, or a worker is sending for it
	ctx       context.Context
	cancel    context.CancelFunc // ends ctx: Run ended or the device rebooted
	dropped   int
}

// hookJob is one GET of one url of one hook.
type hookJob struct {
	ctx   context.Context
	hook  int
	event string
	url   string
	sslCA *string
}

// hookSender runs the process's webhook requests.
var hookSender struct {
	mu      sync.Mutex
	ready   []*Device // devices with requests waiting, in turn
	workers int
}

// hookPending counts the requests waiting in every device's outbox.
var hookPending atomic.Int64

// fireHooks runs the webhooks of ev: each enabled hook of ev's type and
// component id that is active now, whose condition holds and whose
// repeat_period allows, queues a GET of each of its urls with ${…}
// tokens replaced. The requests go out on hookSender's workers, never on
// the caller's goroutine. The caller may hold d.notifyMu, not d.mu.
func (d *Device) fireHooks(ev event) {
	d.mu.Lock()
	hs := d.hooks
	if hs == nil || !d.running {
		d.mu.Unlock()
		return
	}
	var due []hook
	for _, h := range hs.sec.Hooks {
		if h.Enable && h.Event == ev.Event && h.CID == ev.ID {
			due = append(due, h)
		}
	}
	if len(due) == 0 {
		d.mu.Unlock()
		return
	}
	now := d.now()
	local := now.In(d.hookZoneLocked())
	d.mu.Unlock()

	env := &hookEnv{d: d, ev: ev.Attrs}
	for _, h := range due {
		if !hookActive(h.ActiveBetween, local) {
			continue
		}
		cond := true
		if h.Condition != nil && *h.Condition != "" {
			cond = env.holds(*h.Condition)
		}
		d.mu.Lock()
		fire := d.hookDueLocked(h.ID, h.RepeatPeriod, cond, now)
		d.mu.Unlock()
		if !fire {
			continue
		}
		jobs := make([]hookJob, 0, len(h.URLs))
		for _, u := range h.URLs {
			jobs = append(jobs, hookJob{hook: h.ID, event: h.Event, url: env.expand(u), sslCA: h.SSLCA})
		}
		d.mu.Lock()
		for _, j := range jobs {
			d.queueHookLocked(j)
		}
		d.mu.Unlock()
	}
}

// hookDueLocked decides, and remembers, whether hook id fires now:
// repeat_period 0 whenever its condition holds, N > 0 at most once per N
// seconds, negative once each time the condition turns from false to
// true. A hook deleted meanwhile does not fire.
func (d *Device) hookDueLocked(id, repeat int, cond bool, now time.Time) bool {
	hs := d.hooks
	exists := false
	for _, h := range hs.sec.Hooks {
		exists = exists || h.ID == id
	}
	if !exists {
		return false
	}
	run := hs.runs[id]
	if run == nil {
		if hs.runs == nil {
			hs.runs = map[int]*hookRun{}
		}
		run = &hookRun{}
		hs.runs[id] = run
	}
	switch {
	case repeat < 0:
		fire := cond && !run.condWas
		run.condWas = cond
		return fire
	case !cond:
		return false
	case repeat > 0 && !run.last.IsZero() && now.Sub(run.last) < time.Duration(repeat)*time.Second:
		return false
	}
	run.last = now
	return true
}

// hookActive reports whether a hook with active_between between is active
// at local's time of day: from the first time up to (not including) the
// second, across midnight when the second is earlier; all day when the two
// are equal or none is set.
func hookActive(between []string, local time.Time) bool {
	if len(between) != 2 {
		return true
	}
	from, _ := parseHHMM(between[0])
	to, _ := parseHHMM(between[1])
	now := local.Hour()*60 + local.Minute()
	switch {
	case from == to:
		return true
	case from < to:
		return now >= from && now < to
	}
	return now >= from || now < to
}

// hookZoneLocked is the zone of the device clock: sys.location.tz, UTC
// when null or unknown to the host.
func (d *Device) hookZoneLocked() *time.Location {
	tz, _ := d.locationLocked().String("tz")
	return zone(tz)
}

// queueHookLocked queues j in the device's outbox, unless Run is not
// running (the device is off) or a bound is reached (dropped, counted, and
// logged at the first drop and at every power of two after it).
func (d *Device) queueHookLocked(j hookJob) {
	if !d.running {
		return
	}
	o := &d.hooks.out
	if len(o.jobs) >= maxHookQueue || !takePending() {
		o.dropped++
		if o.dropped&(o.dropped-1) == 0 {
			d.log.Warn("webhook: too many requests waiting, dropped", "hook", j.hook, "event", j.event, "dropped", o.dropped)
		}
		return
	}
	if o.ctx == nil {
		o.ctx, o.cancel = context.WithCancel(context.Background())
	}
	j.ctx = o.ctx
	o.jobs = append(o.jobs, j)
	d.timers.Add(1) // Run waits for the request
	if !o.scheduled {
		o.scheduled = true
		hookReady(d)
	}
}

// takePending counts a request in hookPending unless maxHookPending wait.
func takePending() bool {
	for {
		n := hookPending.Load()
		if n >= maxHookPending {
			return false
		}
		if hookPending.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// hookReady puts d in turn for a worker, starting one if fewer than
// hookWorkers run. The caller holds d.mu (d.mu comes before
// hookSender.mu).
func hookReady(d *Device) {
	hookSender.mu.Lock()
	defer hookSender.mu.Unlock()
	hookSender.ready = append(hookSender.ready, d)
	if hookSender.workers < hookWorkers {
		hookSender.workers++
		go hookWork()
	}
}

// hookWork sends requests while devices have some waiting, one request of
// a device at a time, devices in turn; it ends when none wait.
func hookWork() {
	for {
		hookSender.mu.Lock()
		if len(hookSender.ready) == 0 {
			hookSender.workers--
			hookSender.ready = nil
			hookSender.mu.Unlock()
			return
		}
		d := hookSender.ready[0]
		hookSender.ready[0] = nil
		hookSender.ready = hookSender.ready[1:]
		hookSender.mu.Unlock()
		d.sendNextHook()
	}
}

// sendNextHook sends the device's oldest waiting request and puts the
// device in turn again if more wait.
func (d *Device) sendNextHook() {
	d.mu.Lock()
	o := &d.hooks.out
	if len(o.jobs) == 0 {
		o.scheduled = false
		d.mu.Unlock()
		return
	}
	j := o.jobs[0]
	o.jobs[0] = hookJob{}
	o.jobs = o.jobs[1:]
	if len(o.jobs) == 0 {
		o.jobs = nil
	}
	hookPending.Add(-1)
	d.mu.Unlock()

	d.getHook(j)

	d.mu.Lock()
	d.timers.Done()
	if len(o.jobs) > 0 {
		hookReady(d)
	} else {
		o.scheduled = false
	}
	d.mu.Unlock()
}

// dropHooksLocked drops the requests waiting and aborts the one in
// flight: Run ended, or the device rebooted (RAM lost).
func (d *Device) dropHooksLocked() {
	o := &d.hooks.out
	for range o.jobs {
		d.timers.Done()
	}
	hookPending.Add(-int64(len(o.jobs)))
	o.jobs = nil
	if o.cancel != nil {
		o.cancel()
		o.ctx, o.cancel = nil, nil
	}
}

// getHook sends j: a GET whose answer is read (up to maxHookBody) and
// discarded, no retry. The url is never logged: its query may hold a
// secret.
func (d *Device) getHook(j hookJob) {
	req, err := http.NewRequestWithContext(j.ctx, http.MethodGet, j.url, nil)
	if err != nil {
		d.log.Warn("webhook: bad url", "hook", j.hook, "event", j.event)
		return
	}
	client, done, err := d.hookClient(req.URL, j.sslCA)
	if err != nil {
		d.log.Warn("webhook: request not sent", "hook", j.hook, "event", j.event, "err", err)
		return
	}
	if done != nil {
		defer done()
	}
	resp, err := client.Do(req)
	if err != nil {
		if j.ctx.Err() == nil {
			d.log.Warn("webhook: request failed", "hook", j.hook, "event", j.event, "err", hookError(err))
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHookBody))
	_ = resp.Body.Close()
	d.log.Debug("webhook: sent", "hook", j.hook, "event", j.event, "status", resp.StatusCode)
}

// hookError is err without the url that net/http puts in its text.
func hookError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// hookClient is the client for a request to u with the hook's ssl_ca
// (protocol section 1): the device's HTTP client for http and for https
// verified against the built-in bundle, else a client with the TLS that
// ssl_ca asks for, whose connections done closes.
func (d *Device) hookClient(u *url.URL, sslCA *string) (client *http.Client, done func(), err error) {
	mode := shellyws.SSLCABuiltin
	if sslCA != nil && *sslCA != "" {
		mode = *sslCA
	}
	if u.Scheme != "https" || (mode == shellyws.SSLCABuiltin && d.rootCAs == nil) {
		return d.http, nil, nil
	}
	base, ok := d.http.Transport.(*http.Transport)
	if d.http.Transport == nil {
		base, ok = http.DefaultTransport.(*http.Transport)
	}
	if !ok {
		return nil, nil, fmt.Errorf("ssl_ca %q needs an *http.Transport in Options.HTTPClient", mode)
	}
	t := base.Clone()
	if d.http.Transport == nil {
		t.Proxy = nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSClientConfig != nil {
		tc = t.TLSClientConfig.Clone()
	}
	if err := sslca.Apply(tc, mode, d.rootCAs, d.userCA); err != nil {
		return nil, nil, err
	}
	t.TLSClientConfig = tc
	t.DisableKeepAlives = true
	c := &http.Client{Transport: t, Timeout: d.http.Timeout, CheckRedirect: d.http.CheckRedirect, Jar: d.http.Jar}
	return c, t.CloseIdleConnections, nil
}

// hookEnv evaluates tokens and conditions over the objects the vendor
// names: status, config and info (Shelly.GetStatus, GetConfig,
// GetDeviceInfo, rendered once per event when first used) and ev / event
// (the event's attributes).
type hookEnv struct {
	d    *Device
	ev   map[string]any
	docs map[string]any
}

// root returns the object a path starts from.
func (e *hookEnv) root(name string) (any, bool) {
	switch name {
	case "ev", "event":
		if e.ev == nil {
			return map[string]any{}, true
		}
		return e.ev, true
	case "status", "config", "info":
	default:
		return nil, false
	}
	if v, ok := e.docs[name]; ok {
		return v, v != nil
	}
	var raw json.RawMessage
	var err error
	switch name {
	case "status":
		raw, err = e.d.statusJSON()
	case "config":
		raw, err = e.d.configJSON()
	default:
		raw, err = e.d.deviceInfo()
	}
	var v any
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			v = nil
		}
	}
	if e.docs == nil {
		e.docs = map[string]any{}
	}
	e.docs[name] = v
	return v, v != nil
}

// eval evaluates expr, a path such as status["switch:0"].output or
// ev.tC; ok is false when expr is no path or names nothing.
func (e *hookEnv) eval(expr string) (any, bool) {
	root, steps, ok := parseHookPath(strings.TrimSpace(expr))
	if !ok {
		return nil, false
	}
	v, ok := e.root(root)
	for _, s := range steps {
		if !ok {
			return nil, false
		}
		switch cur := v.(type) {
		case map[string]any:
			v, ok = cur[s]
		case []any:
			i, err := strconv.Atoi(s)
			ok = err == nil && i >= 0 && i < len(cur)
			if ok {
				v = cur[i]
			}
		default:
			return nil, false
		}
	}
	return v, ok
}

// holds evaluates a condition: a path is true when its value is (not
// false, 0, "", null or missing); anything else cannot be evaluated
// without a script engine and is true.
func (e *hookEnv) holds(cond string) bool {
	if _, _, ok := parseHookPath(strings.TrimSpace(cond)); !ok {
		return true
	}
	v, ok := e.eval(cond)
	return ok && truthy(v)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err == nil && f != 0 && !math.IsNaN(f)
	case float64:
		return x != 0 && !math.IsNaN(x)
	case int:
		return x != 0
	}
	return true
}

// expand replaces each ${expr} of raw by the URL-encoded value of expr;
// an expr that does not evaluate stays as written (its spaces as %20), and
// $${ is a literal ${.
func (e *hookEnv) expand(raw string) string {
	if !strings.Contains(raw, "${") {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); {
		switch {
		case strings.HasPrefix(raw[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(raw[i:], "${"):
			end := strings.IndexByte(raw[i+2:], '}')
			if end < 0 {
				b.WriteString(raw[i:])
				return b.String()
			}
			token := raw[i : i+3+end]
			if v, ok := e.eval(raw[i+2 : i+2+end]); ok {
				b.WriteString(strings.ReplaceAll(url.QueryEscape(tokenText(v)), "+", "%20"))
			} else {
				b.WriteString(strings.ReplaceAll(token, " ", "%20")) // a request line holds no space
			}
			i += len(token)
		default:
			b.WriteByte(raw[i])
			i++
		}
	}
	return b.String()
}

// tokenText is a value as a script would print it: a string as is, a
// number as its literal, anything else as JSON.
func tokenText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// parseHookPath splits a path: an identifier, then .name, ["key"], ['key']
// or [index] steps. ok is false for anything else (an operator, a call, a
// space inside).
func parseHookPath(s string) (root string, steps []string, ok bool) {
	ident := func(s string) int {
		n := 0
		for n < len(s) {
			c := s[n]
			if c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || n > 0 && c >= '0' && c <= '9' {
				n++
				continue
			}
			break
		}
		return n
	}
	n := ident(s)
	if n == 0 {
		return "", nil, false
	}
	root, s = s[:n], s[n:]
	for s != "" {
		switch s[0] {
		case '.':
			n := ident(s[1:])
			if n == 0 {
				return "", nil, false
			}
			steps, s = append(steps, s[1:1+n]), s[1+n:]
		case '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return "", nil, false
			}
			in := s[1:end]
			switch {
			case len(in) >= 2 && (in[0] == '"' || in[0] == '\'') && in[len(in)-1] == in[0] &&
				!strings.ContainsAny(in[1:len(in)-1], `"'\`):
				steps = append(steps, in[1:len(in)-1])
			case in != "" && strings.Trim(in, "0123456789") == "":
				steps = append(steps, in)
			default:
				return "", nil, false
			}
			s = s[end+1:]
		default:
			return "", nil, false
		}
	}
	return root, steps, true
}

// readingEvent is the webhook event of a reading Device.Update set:
// temperature.change with tC (and tF), humidity.change with rh.
func readingEvent(key string, fields map[string]any) (event, bool) {
	typ, n, _ := strings.Cut(key, ":")
	id, err := strconv.Atoi(n)
	if err != nil {
		return event{}, false
	}
	ev := event{Component: typ, ID: id, Attrs: map[string]any{}}
	switch typ {
	case "temperature":
		ev.Event = "temperature.change"
		for _, k := range []string{"tC", "tF"} {
			if v, ok := fields[k]; ok {
				ev.Attrs[k] = v
			}
		}
		_, ok := fields["tC"]
		return ev, ok
	case "humidity":
		ev.Event = "humidity.change"
		v, ok := fields["rh"]
		ev.Attrs["rh"] = v
		return ev, ok
	}
	return event{}, false
}
