package device

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/frame"
)

// WebhookTypesPageSize is how many event types one
// Webhook.ListAllSupported page holds; Fleet Manager reads further pages
// with "offset" while offset+len(types) < total.
const WebhookTypesPageSize = 5

// The webhook limits of the vendor's docs (protocol section 15.3).
const (
	maxHooks         = 20
	maxHooksSleeping = 10 // battery devices
	maxHookURLs      = 5
	maxHookURLLen    = 300
)

// webhookService is Webhook.* (protocol section 15.3): hooks that make the
// device GET urls when its components report events, and webhook_rev in
// sys status. Firing is in webhook_fire.go.
type webhookService struct{}

func (webhookService) name() string { return "webhooks" }

// hookMethods are the service's methods; each gets the model's catalog.
var hookMethods = []struct {
	name string
	h    func(c *hookCatalog, d *Device, req *shellyws.Request) (any, error)
}{
	{"Webhook.ListSupported", hookListSupported},
	{"Webhook.ListAllSupported", hookListAllSupported},
	{"Webhook.Create", hookCreate},
	{"Webhook.Update", hookUpdate},
	{"Webhook.Delete", hookDelete},
	{"Webhook.DeleteAll", hookDeleteAll},
	{"Webhook.List", hookList},
}

func (webhookService) register(p *Model, handle func(string, handler)) {
	if !hasWebhooks(p) {
		return
	}
	c := newHookCatalog(p)
	for _, m := range hookMethods {
		if p.Methods != nil && !listed(p.Methods, m.name) {
			continue
		}
		h := m.h
		handle(m.name, func(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
			return h(c, d, req)
		})
	}
}

// hasWebhooks reports whether devices of p have webhooks: where the dump
// has a captured Shelly.ListMethods, when it lists Webhook.List; otherwise
// where the dump's sys status reports webhook_rev (every dump, and
// NewModel models).
func hasWebhooks(p *Model) bool {
	if p.Methods != nil {
		return listed(p.Methods, "Webhook.List")
	}
	return p.Status.Object("sys").Has("webhook_rev")
}

func (webhookService) load(d *Device, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var sec hookSection
	if err := json.Unmarshal(raw, &sec); err != nil {
		return err
	}
	d.hooks = &hookState{sec: sec, raw: raw}
	return nil
}

func (webhookService) saveLocked(d *Device) (json.RawMessage, error) {
	if d.hooks == nil {
		return nil, nil
	}
	return d.hooks.raw, nil
}

func (webhookService) sysLocked(d *Device, set func(string, any)) {
	if d.hooks != nil {
		set("webhook_rev", d.hooks.sec.Rev)
	}
}

// bootLocked forgets what repeat_period remembered: it was in RAM.
func (webhookService) bootLocked(d *Device, _ time.Time) {
	if d.hooks != nil {
		d.hooks.runs = nil
	}
}

// stopLocked drops the requests not sent yet and aborts the one being
// sent (webhook_fire.go).
func (webhookService) stopLocked(d *Device) {
	if d.hooks != nil {
		d.dropHooksLocked()
	}
}

// hookState is a device's webhooks, nil until the first change: the
// stored hooks, and in RAM what firing needs. Once made it stays; a
// change replaces sec and raw after storing them.
type hookState struct {
	sec  hookSection
	raw  json.RawMessage  // sec as stored
	runs map[int]*hookRun // repeat_period's memory, by hook id; RAM
	out  hookOutbox       // requests waiting; RAM
}

// hookSection is the section "webhooks" of the stored state.
type hookSection struct {
	// Rev is webhook_rev.
	Rev int `json:"rev"`
	// LastID is the highest id given so far: ids are never reused.
	LastID int    `json:"last_id"`
	Hooks  []hook `json:"hooks"`
}

// hook is one webhook as Webhook.List shows it and as it is stored.
type hook struct {
	ID            int      `json:"id"`
	CID           int      `json:"cid"`
	Enable        bool     `json:"enable"`
	Event         string   `json:"event"`
	Name          *string  `json:"name"`
	SSLCA         *string  `json:"ssl_ca"`
	URLs          []string `json:"urls"`
	ActiveBetween []string `json:"active_between,omitempty"`
	Condition     *string  `json:"condition"`
	RepeatPeriod  int      `json:"repeat_period"`
}

// hookListLocked is the device's hooks; the caller must not change them.
func (d *Device) hookListLocked() []hook {
	if d.hooks == nil {
		return nil
	}
	return d.hooks.sec.Hooks
}

// hookRevLocked is webhook_rev now: the dump's until the first change.
func (d *Device) hookRevLocked() int {
	if d.hooks != nil {
		return d.hooks.sec.Rev
	}
	rev, _ := d.p.Status.Object("sys").Number("webhook_rev")
	return int(rev)
}

// hookLimit is how many hooks the device takes.
func (d *Device) hookLimit() int {
	if d.sleeping() {
		return maxHooksSleeping
	}
	return maxHooks
}

// storeHooksLocked stores sec as the device's hooks, then makes them the
// device's; a refused save changes nothing. The repeat_period memory of
// the hooks in forget goes.
func (d *Device) storeHooksLocked(sec hookSection, forget ...int) error {
	raw, err := json.Marshal(sec)
	if err != nil {
		return err
	}
	if err := d.saveSectionLocked(webhookService{}.name(), raw); err != nil {
		return err
	}
	if d.hooks == nil {
		d.hooks = &hookState{}
	}
	d.hooks.sec, d.hooks.raw = sec, raw
	for _, id := range forget {
		delete(d.hooks.runs, id)
	}
	return nil
}

// hookAttr is an attribute of an event, ev.<name> in tokens and
// conditions.
type hookAttr struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Desc string `json:"desc"`
}

// hookType is an event type hooks can be made for.
type hookType struct {
	name  string
	attrs []hookAttr
}

// hookTypesOf are the event types the kit fires, by component type: what
// switch.go, input.go and Device.Update emit.
var hookTypesOf = map[string][]hookType{
	"switch": {{name: "switch.on"}, {name: "switch.off"}},
	"input": {
		{name: "input.toggle_on"}, {name: "input.toggle_off"},
		{name: "input.button_push"}, {name: "input.button_doublepush"}, {name: "input.button_longpush"},
		{name: "input.button_down"}, {name: "input.button_up"},
	},
	"temperature": {{name: "temperature.change", attrs: []hookAttr{
		{"tC", "number", "Temperature in Celsius"},
		{"tF", "number", "Temperature in Fahrenheit"},
	}}},
	"humidity": {{name: "humidity.change", attrs: []hookAttr{
		{"rh", "number", "Relative humidity in %"},
	}}},
}

// hookCatalog is what a model's devices support, built once per model.
type hookCatalog struct {
	types     []hookType      // in the order of the model's component keys
	supported json.RawMessage // Webhook.ListSupported's answer
}

func newHookCatalog(p *Model) *hookCatalog {
	c := &hookCatalog{}
	seen := map[string]bool{}
	for _, key := range p.Keys {
		typ := keyType(key)
		if seen[typ] {
			continue
		}
		seen[typ] = true
		c.types = append(c.types, hookTypesOf[typ]...)
	}
	buf := []byte(`{"types":{`)
	for i, t := range c.types {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(frame.AppendString(buf, t.name), ':')
		if len(t.attrs) == 0 {
			buf = append(buf, "{}"...)
			continue
		}
		buf = append(append(append(buf, `{"attrs":`...), mustJSON(t.attrs)...), '}')
	}
	c.supported = append(buf, "}}"...)
	return c
}

func (c *hookCatalog) has(event string) bool {
	return slices.ContainsFunc(c.types, func(t hookType) bool { return t.name == event })
}

// hookListSupported serves Webhook.ListSupported: {"types":{"<event>":{}
// or {"attrs":[…]}}}.
func hookListSupported(c *hookCatalog, _ *Device, _ *shellyws.Request) (any, error) {
	return c.supported, nil
}

// hookListAllSupported serves Webhook.ListAllSupported {"offset"}:
// {"types":[{"<event>":{"attrs":[…]}}],"offset","total"}, paged.
func hookListAllSupported(c *hookCatalog, _ *Device, req *shellyws.Request) (any, error) {
	var p struct {
		Offset int `json:"offset"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Offset < 0 {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'offset': must not be negative")
	}
	buf := []byte(`{"types":[`)
	if p.Offset < len(c.types) {
		for i, t := range c.types[p.Offset:min(len(c.types), p.Offset+WebhookTypesPageSize)] {
			if i > 0 {
				buf = append(buf, ',')
			}
			attrs := t.attrs
			if attrs == nil {
				attrs = []hookAttr{}
			}
			buf = append(frame.AppendString(append(buf, '{'), t.name), `:{"attrs":`...)
			buf = append(append(buf, mustJSON(attrs)...), "}}"...)
		}
	}
	buf = strconv.AppendInt(append(buf, `],"offset":`...), int64(p.Offset), 10)
	buf = strconv.AppendInt(append(buf, `,"total":`...), int64(len(c.types)), 10)
	return json.RawMessage(append(buf, '}')), nil
}

// hookParams are Webhook.Create's and Update's params, raw so that an
// absent key and null differ.
type hookParams struct {
	ID            *int            `json:"id"`
	CID           json.RawMessage `json:"cid"`
	Enable        json.RawMessage `json:"enable"`
	Event         json.RawMessage `json:"event"`
	Name          json.RawMessage `json:"name"`
	SSLCA         json.RawMessage `json:"ssl_ca"`
	URLs          json.RawMessage `json:"urls"`
	ActiveBetween json.RawMessage `json:"active_between"`
	Condition     json.RawMessage `json:"condition"`
	RepeatPeriod  json.RawMessage `json:"repeat_period"`
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func badHookArg(name, want string) error {
	return shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument '%s': %s", name, want)
}

// apply sets the fields p has in h, checking each; create makes cid, event
// and urls required.
func (p *hookParams) apply(h *hook, create bool) error {
	required := map[string]json.RawMessage{"cid": p.CID, "event": p.Event, "urls": p.URLs}
	for _, name := range []string{"cid", "event", "urls"} {
		raw := required[name]
		if (create && len(raw) == 0) || isNull(raw) {
			return missingArg(name)
		}
	}
	if len(p.CID) > 0 {
		if err := json.Unmarshal(p.CID, &h.CID); err != nil || h.CID < 0 {
			return badHookArg("cid", "must be a component id")
		}
	}
	if len(p.Event) > 0 {
		if err := json.Unmarshal(p.Event, &h.Event); err != nil {
			return badHookArg("event", "must be a string")
		}
	}
	if len(p.Enable) > 0 {
		if err := json.Unmarshal(p.Enable, &h.Enable); err != nil || isNull(p.Enable) {
			return badHookArg("enable", "must be a boolean")
		}
	}
	if err := nullableString(p.Name, &h.Name, "name"); err != nil {
		return err
	}
	if err := nullableString(p.Condition, &h.Condition, "condition"); err != nil {
		return err
	}
	if err := nullableString(p.SSLCA, &h.SSLCA, "ssl_ca"); err != nil {
		return err
	}
	if h.SSLCA != nil {
		switch *h.SSLCA {
		case "", shellyws.SSLCABuiltin, shellyws.SSLCAUser, shellyws.SSLCAInsecure:
		default:
			return badHookArg("ssl_ca", `must be null, "ca.pem", "user_ca.pem" or "*"`)
		}
	}
	if len(p.URLs) > 0 {
		var urls []string
		if err := json.Unmarshal(p.URLs, &urls); err != nil {
			return badHookArg("urls", "must be an array of strings")
		}
		if err := checkHookURLs(urls); err != nil {
			return err
		}
		h.URLs = urls
	}
	if len(p.ActiveBetween) > 0 {
		var between []string
		if err := json.Unmarshal(p.ActiveBetween, &between); err != nil {
			return badHookArg("active_between", `must be ["HH:MM","HH:MM"], [] or null`)
		}
		switch len(between) {
		case 0:
			between = nil
		case 2:
			for _, s := range between {
				if _, ok := parseHHMM(s); !ok {
					return badHookArg("active_between", `must be ["HH:MM","HH:MM"], [] or null`)
				}
			}
		default:
			return badHookArg("active_between", `must be ["HH:MM","HH:MM"], [] or null`)
		}
		h.ActiveBetween = between
	}
	if len(p.RepeatPeriod) > 0 {
		n, err := strconv.Atoi(string(bytes.TrimSpace(p.RepeatPeriod)))
		if err != nil {
			return badHookArg("repeat_period", "must be a whole number of seconds")
		}
		h.RepeatPeriod = n
	}
	return nil
}

// nullableString sets *dst from raw: a string or null; absent leaves it.
func nullableString(raw json.RawMessage, dst **string, name string) error {
	switch {
	case len(raw) == 0:
		return nil
	case isNull(raw):
		*dst = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return badHookArg(name, "must be a string or null")
	}
	*dst = &s
	return nil
}

// checkHookURLs checks a hook's urls: 1 to 5 http or https urls of at
// most 300 characters.
func checkHookURLs(urls []string) error {
	if len(urls) < 1 || len(urls) > maxHookURLs {
		return badHookArg("urls", "must hold 1 to 5 urls")
	}
	for _, u := range urls {
		if len([]rune(u)) > maxHookURLLen {
			return badHookArg("urls", "a url is longer than 300 characters")
		}
		lower := strings.ToLower(u)
		if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
			return badHookArg("urls", "each must be an http:// or https:// url")
		}
	}
	return nil
}

// parseHHMM reads "HH:MM" (leading zeros optional) as minutes since
// midnight.
func parseHHMM(s string) (int, bool) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) < 1 || len(mm) > 2 {
		return 0, false
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || hh[0] == '+' || mm[0] == '+' {
		return 0, false
	}
	return h*60 + m, true
}

// check refuses a hook for an event the model does not fire or a
// component instance it does not have.
func (c *hookCatalog) check(d *Device, h *hook) error {
	if !c.has(h.Event) {
		return badHookArg("event", "unsupported event type "+strconv.Quote(h.Event))
	}
	typ, _, _ := strings.Cut(h.Event, ".")
	if !slices.Contains(d.p.Keys, typ+":"+strconv.Itoa(h.CID)) {
		return badHookArg("cid", "no "+typ+":"+strconv.Itoa(h.CID))
	}
	return nil
}

func errHookID(id int) error { return shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", id) }

// changeHooks is every Webhook.* write: under the device's locks, edit
// makes next (Rev one up, LastID carried) from the current hooks and says
// which hook ids to forget; next is stored and webhook_rev reported.
func (d *Device) changeHooks(edit func(cur []hook, next *hookSection) (forget []int, err error)) (hookSection, error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	next := hookSection{Rev: d.hookRevLocked() + 1}
	if d.hooks != nil {
		next.LastID = d.hooks.sec.LastID
	}
	forget, err := edit(d.hookListLocked(), &next)
	if err == nil {
		err = d.storeHooksLocked(next, forget...)
	}
	d.mu.Unlock()
	if err != nil {
		return hookSection{}, err
	}
	d.sysRevChanged("webhook_rev", next.Rev)
	return next, nil
}

// hookIndex is where the hook with id is in cur, or the firmware's error.
func hookIndex(cur []hook, id int) (int, error) {
	i := slices.IndexFunc(cur, func(h hook) bool { return h.ID == id })
	if i < 0 {
		return -1, errHookID(id)
	}
	return i, nil
}

// hookCreate serves Webhook.Create -> {"id","rev"}.
func hookCreate(c *hookCatalog, d *Device, req *shellyws.Request) (any, error) {
	var p hookParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	var h hook
	if err := p.apply(&h, true); err != nil {
		return nil, err
	}
	if err := c.check(d, &h); err != nil {
		return nil, err
	}
	sec, err := d.changeHooks(func(cur []hook, next *hookSection) ([]int, error) {
		if limit := d.hookLimit(); len(cur) >= limit {
			return nil, shellyws.Errorf(shellyws.CodeResourceExhausted, "Too many hooks: at most %d", limit)
		}
		next.LastID++
		h.ID = next.LastID
		next.Hooks = append(slices.Clone(cur), h)
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return createResult{h.ID, sec.Rev}, nil
}

// hookUpdate serves Webhook.Update {"id",…partial…} -> {"rev"}. An updated
// hook starts its repeat_period afresh.
func hookUpdate(c *hookCatalog, d *Device, req *shellyws.Request) (any, error) {
	var p hookParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	sec, err := d.changeHooks(func(cur []hook, next *hookSection) ([]int, error) {
		i, err := hookIndex(cur, *p.ID)
		if err != nil {
			return nil, err
		}
		h := cur[i]
		h.URLs = slices.Clone(h.URLs)
		if err := p.apply(&h, false); err != nil {
			return nil, err
		}
		if err := c.check(d, &h); err != nil {
			return nil, err
		}
		next.Hooks = slices.Clone(cur)
		next.Hooks[i] = h
		return []int{h.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	return revResult{sec.Rev}, nil
}

// hookDelete serves Webhook.Delete {"id"} -> {"rev"}.
func hookDelete(_ *hookCatalog, d *Device, req *shellyws.Request) (any, error) {
	var p struct {
		ID *int `json:"id"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	sec, err := d.changeHooks(func(cur []hook, next *hookSection) ([]int, error) {
		i, err := hookIndex(cur, *p.ID)
		if err != nil {
			return nil, err
		}
		next.Hooks = slices.Delete(slices.Clone(cur), i, i+1)
		return []int{*p.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	return revResult{sec.Rev}, nil
}

// hookDeleteAll serves Webhook.DeleteAll -> {"rev"}; webhook_rev goes up
// even when there was nothing to delete.
func hookDeleteAll(_ *hookCatalog, d *Device, _ *shellyws.Request) (any, error) {
	sec, err := d.changeHooks(func(cur []hook, next *hookSection) ([]int, error) {
		next.Hooks = []hook{}
		forget := make([]int, 0, len(cur))
		for _, h := range cur {
			forget = append(forget, h.ID)
		}
		return forget, nil
	})
	if err != nil {
		return nil, err
	}
	return revResult{sec.Rev}, nil
}

// hookList serves Webhook.List -> {"hooks":[…],"rev"}; urls keep their
// '&' (no HTML escaping).
func hookList(_ *hookCatalog, d *Device, _ *shellyws.Request) (any, error) {
	d.mu.Lock()
	res := struct {
		Hooks []hook `json:"hooks"`
		Rev   int    `json:"rev"`
	}{Hooks: slices.Clone(d.hookListLocked()), Rev: d.hookRevLocked()}
	d.mu.Unlock()
	if res.Hooks == nil {
		res.Hooks = []hook{}
	}
	return plainJSON(res)
}

// plainJSON encodes v as encoding/json does, without HTML escaping.
func plainJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
