package device_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // active_between in a named zone on any host

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

// hookListener is an HTTP server on 127.0.0.1, like a curl-style
// receiver, that records the request URI of every GET a webhook sends.
// Requests to /slow wait until release (or until the device gives up).
type hookListener struct {
	*httptest.Server
	got     chan string
	release chan struct{}
	once    sync.Once
}

func newHookListener(t *testing.T, tlsServer bool) *hookListener {
	t.Helper()
	l := &hookListener{got: make(chan string, 1000), release: make(chan struct{})}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
		}
		l.got <- r.URL.RequestURI()
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-l.release:
			case <-r.Context().Done():
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	if tlsServer {
		l.Server = httptest.NewTLSServer(h)
	} else {
		l.Server = httptest.NewServer(h)
	}
	t.Cleanup(l.Close)
	t.Cleanup(l.unblock) // before Close: cleanups run last first
	return l
}

func (l *hookListener) unblock() { l.once.Do(func() { close(l.release) }) }

// next returns the next request URI received.
func (l *hookListener) next(t *testing.T) string {
	t.Helper()
	select {
	case uri := <-l.got:
		return uri
	case <-time.After(waitTimeout):
		t.Fatal("no webhook request arrived")
		return ""
	}
}

// until returns every request URI received up to and including the first
// one for path ctl: a device sends its requests one at a time in the
// order of its events, so a control event fired last proves that nothing
// else is still on its way.
func (l *hookListener) until(t *testing.T, ctl string) []string {
	t.Helper()
	var uris []string
	for {
		uri := l.next(t)
		uris = append(uris, uri)
		if strings.HasPrefix(uri, ctl) {
			return uris
		}
	}
}

// createHook creates a hook and returns its id.
func createHook(t *testing.T, c *shellywstest.Conn, params map[string]any) int {
	t.Helper()
	if _, ok := params["enable"]; !ok {
		params["enable"] = true
	}
	res := call(t, c, "Webhook.Create", params)
	c.ExpectStatusT(t) // sys.webhook_rev
	return int(res["id"].(float64))
}

func TestWebhookListSupported(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{Model: kitModel(t, device.HumiditySpec{ID: 0})})
	var sup struct {
		Types map[string]struct {
			Attrs []map[string]string `json:"attrs"`
		} `json:"types"`
	}
	c.CallT(t, "Webhook.ListSupported", nil, &sup)
	want := []string{"switch.on", "switch.off", "input.toggle_on", "input.toggle_off", "input.button_push",
		"input.button_doublepush", "input.button_longpush", "input.button_down", "input.button_up",
		"temperature.change", "humidity.change"}
	assert.Len(t, sup.Types, len(want))
	for _, ev := range want {
		assert.Contains(t, sup.Types, ev)
	}
	assert.Equal(t, []map[string]string{
		{"name": "tC", "type": "number", "desc": "Temperature in Celsius"},
		{"name": "tF", "type": "number", "desc": "Temperature in Fahrenheit"},
	}, sup.Types["temperature.change"].Attrs)
	assert.Equal(t, "rh", sup.Types["humidity.change"].Attrs[0]["name"])
	var raw json.RawMessage
	c.CallT(t, "Webhook.ListSupported", nil, &raw)
	assert.Contains(t, string(raw), `"switch.on":{}`, "no attrs: an empty object")

	// Fleet Manager's admission: page while offset+len(types) < total;
	// each entry an object of one event type with its attrs.
	var all []string
	pages := 0
	for offset := 0; pages < 100; pages++ {
		var page struct {
			Types  []map[string]struct{ Attrs []any } `json:"types"`
			Offset int                                `json:"offset"`
			Total  int                                `json:"total"`
		}
		c.CallT(t, "Webhook.ListAllSupported", map[string]any{"offset": offset}, &page)
		assert.Equal(t, offset, page.Offset)
		assert.Equal(t, len(want), page.Total)
		assert.LessOrEqual(t, len(page.Types), device.WebhookTypesPageSize)
		for _, entry := range page.Types {
			require.Len(t, entry, 1)
			for ev, v := range entry {
				all = append(all, ev)
				assert.NotNil(t, v.Attrs, "attrs always present in ListAllSupported")
			}
		}
		if len(page.Types) == 0 || offset+len(page.Types) >= page.Total {
			break
		}
		offset += len(page.Types)
	}
	assert.ElementsMatch(t, want, all)
	assert.Equal(t, 2, pages, "11 types in pages of 5")
	c.CallT(t, "Webhook.ListAllSupported", nil, &raw)
	assert.Contains(t, string(raw), `"attrs":[]`)
	assert.Equal(t, shellyws.CodeInvalidArgument, rpcError(t, c, "Webhook.ListAllSupported", map[string]any{"offset": -1}).Code)
}

func TestWebhookCRUDAndErrors(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	assert.EqualValues(t, 0, call(t, c, "Sys.GetStatus", nil)["webhook_rev"])
	res := call(t, c, "Webhook.Create", map[string]any{"cid": 0, "enable": true, "event": "switch.on", "name": "n",
		"urls": []string{"http://127.0.0.1:9/a?x=1&y=2"}, "ssl_ca": nil, "active_between": []string{"08:00", "20:00"},
		"condition": `status["switch:0"].output`, "repeat_period": 0})
	assert.Equal(t, map[string]any{"id": 1.0, "rev": 1.0}, res)
	assert.EqualValues(t, 1, kvsRevDelta(t, c, "webhook_rev"))
	res = call(t, c, "Webhook.Create", map[string]any{"cid": 1, "event": "switch.off", "urls": []string{"https://127.0.0.1:9/b"}})
	assert.Equal(t, map[string]any{"id": 2.0, "rev": 2.0}, res)
	c.ExpectStatusT(t)

	var raw json.RawMessage
	c.CallT(t, "Webhook.List", nil, &raw)
	assert.JSONEq(t, `{"hooks":[
		{"id":1,"cid":0,"enable":true,"event":"switch.on","name":"n","ssl_ca":null,"urls":["http://127.0.0.1:9/a?x=1&y=2"],
		 "active_between":["08:00","20:00"],"condition":"status[\"switch:0\"].output","repeat_period":0},
		{"id":2,"cid":1,"enable":false,"event":"switch.off","name":null,"ssl_ca":null,"urls":["https://127.0.0.1:9/b"],
		 "condition":null,"repeat_period":0}],"rev":2}`, string(raw))
	assert.Contains(t, string(raw), `?x=1&y=2`, "urls as written, no HTML escaping")

	// Update is partial; [] (or null) clears active_between, which List
	// then leaves out.
	res = call(t, c, "Webhook.Update", map[string]any{"id": 1, "name": "renamed", "active_between": []string{}, "repeat_period": -1})
	assert.Equal(t, map[string]any{"rev": 3.0}, res)
	assert.EqualValues(t, 3, kvsRevDelta(t, c, "webhook_rev"))
	var list struct {
		Hooks []map[string]any `json:"hooks"`
		Rev   int              `json:"rev"`
	}
	c.CallT(t, "Webhook.List", nil, &list)
	assert.Equal(t, 3, list.Rev)
	assert.Equal(t, "renamed", list.Hooks[0]["name"])
	assert.NotContains(t, list.Hooks[0], "active_between")
	assert.EqualValues(t, -1, list.Hooks[0]["repeat_period"])
	assert.Equal(t, "switch.on", list.Hooks[0]["event"], "the rest stays")

	// Refused calls change nothing.
	long := "http://127.0.0.1/" + strings.Repeat("p", 300-len("http://127.0.0.1/")+1)
	for _, tc := range []struct {
		method string
		params map[string]any
		code   int
		msg    string
	}{
		{"Webhook.Create", map[string]any{"cid": 0, "event": "cover.open", "urls": []string{"http://a"}}, shellyws.CodeInvalidArgument, "event"},
		{"Webhook.Create", map[string]any{"cid": 7, "event": "switch.on", "urls": []string{"http://a"}}, shellyws.CodeInvalidArgument, "cid"},
		{"Webhook.Create", map[string]any{"cid": 1, "event": "input.button_push", "urls": []string{"http://a"}}, shellyws.CodeInvalidArgument, "cid"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{}}, shellyws.CodeInvalidArgument, "urls"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://1", "http://2", "http://3", "http://4", "http://5", "http://6"}}, shellyws.CodeInvalidArgument, "urls"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{long}}, shellyws.CodeInvalidArgument, "300"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"ftp://a"}}, shellyws.CodeInvalidArgument, "urls"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on"}, shellyws.CodeInvalidArgument, "'urls'"},
		{"Webhook.Create", map[string]any{"event": "switch.on", "urls": []string{"http://a"}}, shellyws.CodeInvalidArgument, "'cid'"},
		{"Webhook.Create", map[string]any{"cid": 0, "urls": []string{"http://a"}}, shellyws.CodeInvalidArgument, "'event'"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://a"}, "ssl_ca": "mine.pem"}, shellyws.CodeInvalidArgument, "ssl_ca"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://a"}, "active_between": []string{"25:00", "1:00"}}, shellyws.CodeInvalidArgument, "active_between"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://a"}, "repeat_period": "soon"}, shellyws.CodeInvalidArgument, "repeat_period"},
		{"Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://a"}, "enable": "yes"}, shellyws.CodeInvalidArgument, "enable"},
		{"Webhook.Update", map[string]any{"name": "x"}, shellyws.CodeInvalidArgument, "'id'"},
		{"Webhook.Update", map[string]any{"id": 9, "name": "x"}, shellyws.CodeNotFound, "9"},
		{"Webhook.Update", map[string]any{"id": 1, "urls": nil}, shellyws.CodeInvalidArgument, "urls"},
		{"Webhook.Update", map[string]any{"id": 1, "event": "input.button_push", "cid": 3}, shellyws.CodeInvalidArgument, "cid"},
		{"Webhook.Delete", map[string]any{"id": 9}, shellyws.CodeNotFound, "9"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v", tc.method, tc.params)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
	c.CallT(t, "Webhook.List", nil, &list)
	assert.Equal(t, 3, list.Rev)
	assert.Len(t, list.Hooks, 2)

	// At most 20 hooks: the 21st is -108.
	for range 18 {
		createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{"http://127.0.0.1:9/"}})
	}
	e := rpcError(t, c, "Webhook.Create", map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{"http://127.0.0.1:9/"}})
	assert.Equal(t, shellyws.CodeResourceExhausted, e.Code)

	res = call(t, c, "Webhook.Delete", map[string]any{"id": 2})
	assert.Equal(t, map[string]any{"rev": 22.0}, res)
	c.ExpectStatusT(t)
	id := createHook(t, c, map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://127.0.0.1:9/"}})
	assert.Equal(t, 21, id, "ids are never reused")
	res = call(t, c, "Webhook.DeleteAll", nil)
	assert.Equal(t, map[string]any{"rev": 24.0}, res)
	assert.EqualValues(t, 24, kvsRevDelta(t, c, "webhook_rev"))
	c.CallT(t, "Webhook.List", nil, &raw)
	assert.JSONEq(t, `{"hooks":[],"rev":24}`, string(raw))
	assert.EqualValues(t, 24, call(t, c, "Sys.GetStatus", nil)["webhook_rev"])
}

// TestWebhookLimitOfBatteryDevices: a sleeping device takes 10 hooks.
func TestWebhookLimitOfBatteryDevices(t *testing.T) {
	p, err := profile.Builtin("plusht-gen2")
	require.NoError(t, err)
	d, err := device.New(device.Options{Model: p})
	require.NoError(t, err)
	require.True(t, d.Sleeping())
	create := &shellyws.Request{Method: "Webhook.Create", Params: json.RawMessage(
		`{"cid":0,"enable":true,"event":"temperature.change","urls":["http://127.0.0.1:9/"]}`)}
	for range 10 {
		_, err := d.Dispatch(context.Background(), create)
		require.NoError(t, err)
	}
	_, err = d.Dispatch(context.Background(), create)
	assert.Equal(t, shellyws.CodeResourceExhausted, shellyws.AsError(err).Code)
}

// TestWebhookRefusedSaveChangesNothing: a refused save leaves the hooks and
// webhook_rev as they were.
func TestWebhookRefusedSaveChangesNothing(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{State: failingStore{}})
	e := rpcError(t, c, "Webhook.Create", map[string]any{"cid": 0, "event": "switch.on", "urls": []string{"http://127.0.0.1:9/"}})
	assert.Equal(t, shellyws.CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "/secret")
	var raw json.RawMessage
	c.CallT(t, "Webhook.List", nil, &raw)
	assert.JSONEq(t, `{"hooks":[],"rev":0}`, string(raw))
}

// TestWebhookTokens: ${…} paths over info, status, config and the event's
// attributes, URL-encoded; $${ is a literal ${; anything else stays as
// written.
func TestWebhookTokens(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	l := newHookListener(t, false)
	call(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"device": map[string]any{"name": "Cellar & Co/1"}}})
	c.ExpectStatusT(t)
	c.ExpectEventT(t)
	createHook(t, c, map[string]any{"cid": 0, "event": "switch.on", "urls": []string{
		l.URL + `/on?id=${info.id}&out=${status["switch:0"].output}&name=${config.sys.device.name}` +
			`&gen=${info['gen']}&lit=$${info.id}&expr=${info.gen+1}&sp=${info.gen + 1}&missing=${status.nope.x}&ev=${ev.tC}&open=${info`,
		l.URL + `/ctl?mac=${ status.sys.mac }&arr=${config["switch:0"].id}`,
	}})
	createHook(t, c, map[string]any{"cid": 0, "event": "temperature.change", "urls": []string{
		l.URL + `/ctl/temp?tC=${ev.tC}&tF=${event.tF}&now=${status["temperature:0"].tC}`,
	}})

	call(t, c, "Switch.Set", map[string]any{"id": 0, "on": true})
	assert.Equal(t, []string{
		"/on?id=" + kitID + "&out=true&name=Cellar%20%26%20Co%2F1&gen=2&lit=${info.id}&expr=${info.gen+1}&sp=${info.gen%20+%201}&missing=${status.nope.x}&ev=${ev.tC}&open=${info",
		"/ctl?mac=0A1B2C3D4E5F&arr=0",
	}, l.until(t, "/ctl"))

	require.NoError(t, d.SetTemperature(0, 21.5))
	assert.Equal(t, []string{"/ctl/temp?tC=21.5&tF=70.7&now=21.5"}, l.until(t, "/ctl"))
}

// TestWebhookConditionsAndRepeat: conditions as paths, repeat_period 0, N
// and negative, disabled hooks, on an injected clock.
func TestWebhookConditionsAndRepeat(t *testing.T) {
	clock := newFakeClock()
	d, c, _ := connectKit(t, device.Options{Now: clock.Now})
	l := newHookListener(t, false)
	push := func() { require.NoError(t, d.Input(0).Push("single_push")) }
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/every10s"}, "repeat_period": 10})
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/rising"},
		"repeat_period": -1, "condition": `status["input:0"].state`})
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/whenon"},
		"condition": `status["switch:1"].output`})
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/script"},
		"condition": `status["switch:1"].output == true`}) // no script engine: true
	off := createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/off"}, "enable": false})
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl"}})

	push()
	assert.Equal(t, []string{"/every10s", "/script", "/ctl"}, l.until(t, "/ctl"))
	clock.Advance(5 * time.Second)
	d.Input(0).SetState(true)
	push()
	assert.Equal(t, []string{"/rising", "/script", "/ctl"}, l.until(t, "/ctl"), "within 10 s; the condition rose")
	clock.Advance(6 * time.Second)
	push()
	assert.Equal(t, []string{"/every10s", "/script", "/ctl"}, l.until(t, "/ctl"), "11 s on; the condition stayed true")
	d.Input(0).SetState(false)
	d.Switch(1).Set(true, "button")
	push()
	assert.Equal(t, []string{"/whenon", "/script", "/ctl"}, l.until(t, "/ctl"))
	d.Input(0).SetState(true)
	call(t, c, "Webhook.Update", map[string]any{"id": off, "enable": true})
	push()
	assert.Equal(t, []string{"/rising", "/whenon", "/script", "/off", "/ctl"}, l.until(t, "/ctl"))
}

// TestWebhookActiveBetween: hooks are active in their window of the
// device clock, in sys.location.tz.
func TestWebhookActiveBetween(t *testing.T) {
	clock := newFakeClock() // 15:09 UTC
	d, c, _ := connectKit(t, device.Options{Now: clock.Now})
	l := newHookListener(t, false)
	for name, between := range map[string][]string{
		"in": {"15:00", "16:00"}, "before": {"16:00", "17:30"}, "overnight": {"23:00", "15:10"},
		"ended": {"9:00", "15:09"}, "sofia": {"17:05", "17:10"},
	} {
		createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/" + name}, "active_between": between})
	}
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl"}})
	require.NoError(t, d.Input(0).Push("single_push"))
	assert.ElementsMatch(t, []string{"/in", "/overnight", "/ctl"}, l.until(t, "/ctl"))

	call(t, c, "Sys.SetConfig", map[string]any{"config": map[string]any{"location": map[string]any{"tz": "Europe/Sofia"}}})
	require.NoError(t, d.Input(0).Push("single_push")) // 17:09 in Sofia
	assert.ElementsMatch(t, []string{"/before", "/sofia", "/ctl"}, l.until(t, "/ctl"))
}

// TestWebhookSlowReceiverDelaysNothing: a receiver that never answers
// delays no Switch.Set answer; requests beyond the device's bound are
// dropped and logged, the rest go out once it answers.
func TestWebhookSlowReceiverDelaysNothing(t *testing.T) {
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, c, _ := connectKit(t, device.Options{Logger: log})
	l := newHookListener(t, false)
	createHook(t, c, map[string]any{"cid": 0, "event": "switch.on", "urls": []string{l.URL + "/slow/on?secret=hunter2"}})
	createHook(t, c, map[string]any{"cid": 0, "event": "switch.off", "urls": []string{l.URL + "/slow/off?secret=hunter2"}})
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl"}})

	// 30 changes while the receiver holds the first request: each answer
	// comes at once (a bound of 5 s for all of them, where one request
	// held on the request path would take forever).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 30 {
		require.NoError(t, c.Call(ctx, "Switch.Set", map[string]any{"id": 0, "on": i%2 == 0}, nil), "Switch.Set %d", i)
	}
	assert.Contains(t, l.next(t), "/slow/on", "the first request is held")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "dropped") }, waitTimeout, time.Millisecond)

	// One held and 20 waiting (or 19, if the worker had not taken the
	// first yet when the 21st came); the other events were dropped.
	l.unblock()
	slow := 1
	for range 19 {
		assert.Contains(t, l.next(t), "/slow/")
		slow++
	}
	require.NoError(t, d.Input(0).Push("single_push")) // room again in the queue
	rest := l.until(t, "/ctl")
	slow += len(rest) - 1
	assert.GreaterOrEqual(t, slow, 20)
	assert.LessOrEqual(t, slow, 21)
	assert.NotContains(t, logs.String(), "hunter2", "urls are never logged")
}

// TestWebhookTLS: https urls verified as ssl_ca says (protocol section 1).
func TestWebhookTLS(t *testing.T) {
	l := newHookListener(t, true)
	pool := l.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.Certificate().Raw})
	var logs testkit.Buffer
	d, c, _ := connectKit(t, device.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		UserCA: func() ([]byte, error) { return certPEM, nil }})
	for path, ca := range map[string]any{"/builtin": nil, "/user": "user_ca.pem", "/insecure": "*"} {
		createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + path}, "ssl_ca": ca})
	}
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl"}, "ssl_ca": "*"})
	require.NoError(t, d.Input(0).Push("single_push"))
	// The built-in bundle (the system roots) does not know the test CA:
	// the handshake fails and nothing arrives for /builtin.
	assert.ElementsMatch(t, []string{"/user", "/insecure", "/ctl"}, l.until(t, "/ctl"))
	assert.Contains(t, logs.String(), "certificate")

	// With the embedder's bundle as the built-in one, "ca.pem" verifies.
	d2, c2, _ := connectKit(t, device.Options{ID: "shellypro2pm-0a1b2c3d4e60", RootCAs: pool})
	createHook(t, c2, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl/builtin"}, "ssl_ca": "ca.pem"})
	require.NoError(t, d2.Input(0).Push("single_push"))
	assert.Equal(t, []string{"/ctl/builtin"}, l.until(t, "/ctl"))
}

// TestWebhookNoStormOnReconnect: a reconnect is not an event, nor is a
// boot. A fleet with hooks on every event it has survives a server
// restart and reboots (with relays that come back on) without one
// request; then each device's control event proves the listener hears
// every request, and nothing else was on its way.
func TestWebhookNoStormOnReconnect(t *testing.T) {
	const fleet = 100
	srv := shellywstest.NewServer(t)
	l := newHookListener(t, false)
	model := kitModel(t)
	devices := make([]*device.Device, fleet)
	conns := make([]*shellywstest.Conn, fleet)
	for i := range devices {
		o := device.Options{Model: model, ID: fmt.Sprintf("shellypro2pm-0a1b2c3d%04x", i), Store: enabledStore(srv.URL()),
			State: device.NewMemoryStore()}
		devices[i] = startDevice(t, o)
		conns[i] = srv.AcceptT(t)
		conns[i].ExpectFullStatusT(t)
	}
	for i, c := range conns {
		for _, ev := range []string{"switch.on", "switch.off", "input.toggle_on", "input.toggle_off", "input.button_longpush"} {
			createHook(t, c, map[string]any{"cid": 0, "event": ev, "urls": []string{l.URL + "/storm?ev=" + ev + "&id=${info.id}"}})
		}
		createHook(t, c, map[string]any{"cid": 0, "event": "temperature.change", "urls": []string{l.URL + "/storm?ev=t"}})
		createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl?id=${info.id}"}})
		if i%10 == 0 {
			// Relays that switch on at boot: a boot that emitted events
			// would fire switch.on here.
			call(t, c, "Switch.SetConfig", map[string]any{"id": 0, "config": map[string]any{"initial_state": "on"}})
		}
	}

	rctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	require.NoError(t, srv.Restart(rctx))
	back := map[string]*shellywstest.Conn{}
	for range fleet {
		c, err := srv.Accept(rctx)
		require.NoError(t, err)
		fs, err := c.ExpectFullStatus(rctx)
		require.NoError(t, err)
		back[fs.Src] = c
	}
	for i, d := range devices {
		if i%10 != 0 {
			continue
		}
		back[d.ID()].CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 0}, nil)
		c, err := srv.Accept(rctx)
		require.NoError(t, err)
		fs, err := c.ExpectFullStatus(rctx)
		require.NoError(t, err)
		require.Equal(t, d.ID(), fs.Src)
		assert.Contains(t, string(fs.Status["switch:0"]), `"output":true`, "initial_state on")
	}

	for _, d := range devices {
		require.NoError(t, d.Input(0).Push("single_push"))
	}
	seen := map[string]bool{}
	for len(seen) < fleet {
		uri := l.next(t)
		require.True(t, strings.HasPrefix(uri, "/ctl?id="), "a request without an event: %s", uri)
		seen[strings.TrimPrefix(uri, "/ctl?id=")] = true
	}
	for _, d := range devices {
		assert.True(t, seen[d.ID()], d.ID())
	}
}

// TestHooksAndKVSSurviveRebootAndRestart: hooks with their ids and
// webhook_rev, KVS entries with their etags and kvs_rev survive
// Shelly.Reboot and a new device on the same state directory.
func TestHooksAndKVSSurviveRebootAndRestart(t *testing.T) {
	dir := t.TempDir()
	l := newHookListener(t, false)
	srv := shellywstest.NewServer(t)
	o := device.Options{Model: kitModel(t), ID: kitID, StateDir: dir, Server: srv.URL()}
	d := startDevice(t, o)
	c := srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	createHook(t, c, map[string]any{"cid": 0, "event": "input.button_push", "urls": []string{l.URL + "/ctl?n=1"}, "name": "one"})
	createHook(t, c, map[string]any{"cid": 0, "event": "switch.on", "urls": []string{l.URL + "/two"}})
	call(t, c, "Webhook.Delete", map[string]any{"id": 2})
	c.ExpectStatusT(t)
	set := call(t, c, "KVS.Set", map[string]any{"key": "k", "value": map[string]any{"v": 1}})
	c.ExpectStatusT(t)
	var hooks, kv json.RawMessage
	c.CallT(t, "Webhook.List", nil, &hooks)
	c.CallT(t, "KVS.Get", map[string]any{"key": "k"}, &kv)
	sys := call(t, c, "Sys.GetStatus", nil)
	assert.EqualValues(t, 3, sys["webhook_rev"])
	assert.EqualValues(t, 1, sys["kvs_rev"])
	assert.Contains(t, string(kv), set["etag"].(string))

	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 0}, nil)
	c = srv.AcceptT(t)
	c.ExpectFullStatusT(t)
	var after json.RawMessage
	c.CallT(t, "Webhook.List", nil, &after)
	assert.JSONEq(t, string(hooks), string(after))
	c.CallT(t, "KVS.Get", map[string]any{"key": "k"}, &after)
	assert.JSONEq(t, string(kv), string(after))
	after2 := call(t, c, "Sys.GetStatus", nil)
	assert.Equal(t, sys["webhook_rev"], after2["webhook_rev"])
	assert.Equal(t, sys["kvs_rev"], after2["kvs_rev"])
	require.NoError(t, d.Input(0).Push("single_push"))
	assert.Equal(t, []string{"/ctl?n=1"}, l.until(t, "/ctl"), "the hook fires after the reboot")

	// A new process on the same directory is the same device.
	o.Server = ""
	d2, err := device.New(o)
	require.NoError(t, err)
	dispatch := func(method, params string) json.RawMessage {
		t.Helper()
		res, err := d2.Dispatch(context.Background(), &shellyws.Request{Method: method, Params: json.RawMessage(params)})
		require.NoError(t, err)
		raw, err := json.Marshal(res)
		require.NoError(t, err)
		return raw
	}
	assert.JSONEq(t, string(hooks), string(dispatch("Webhook.List", "")))
	assert.JSONEq(t, string(kv), string(dispatch("KVS.Get", `{"key":"k"}`)))
	st := obj(t, dispatch("Sys.GetStatus", ""))
	assert.Equal(t, sys["webhook_rev"], st["webhook_rev"])
	assert.Equal(t, sys["kvs_rev"], st["kvs_rev"])
	res := obj(t, dispatch("Webhook.Create", `{"cid":0,"event":"switch.off","urls":["http://127.0.0.1:9/"]}`))
	assert.EqualValues(t, 3, res["id"], "the id counter is stored too")
	assert.EqualValues(t, 4, res["rev"])
}

// TestWebhookOnEveryChannel: Webhook.Create over HTTP GET (the curl way)
// and the device's own websocket; a Switch.Set over HTTP fires it.
func TestWebhookOnEveryChannel(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	l := newHookListener(t, false)
	h := shellyws.NewHandler(d.Component())
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); h.Close() })
	get := func(path string) {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, hs.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	get(`/rpc/Webhook.Create?cid=0&enable=true&event=switch.on&urls=` + strings.ReplaceAll(`["`+l.URL+`/ctl/http?src=${info.id}"]`, `"`, "%22"))
	c.ExpectStatusT(t)
	ws := shellywstest.DialDevice(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc")
	var res map[string]any
	ws.CallT(t, "Webhook.Create", map[string]any{"cid": 0, "enable": true, "event": "switch.off", "urls": []string{l.URL + "/ctl/ws"}}, &res)
	assert.EqualValues(t, 2, res["id"])
	get("/rpc/Switch.Set?id=0&on=true")
	assert.Equal(t, []string{"/ctl/http?src=" + kitID}, l.until(t, "/ctl"))
	get("/rpc/Switch.Set?id=0&on=false")
	assert.Equal(t, []string{"/ctl/ws"}, l.until(t, "/ctl"))
}

// TestWebhookWhereTheModelHasIt: without a captured Shelly.ListMethods
// every dump has webhooks (all report sys.webhook_rev); with one, each
// Webhook and KVS method is served only if listed.
func TestWebhookWhereTheModelHasIt(t *testing.T) {
	for _, name := range []string{"plus1pm-gen2", "plusht-gen2", "walldisplay-gen2", "pro3em-gen2"} {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		d, err := device.New(device.Options{Model: p})
		require.NoError(t, err)
		_, err = d.Dispatch(context.Background(), &shellyws.Request{Method: "Webhook.List"})
		assert.NoError(t, err, name)
		for _, m := range []string{"Webhook.ListSupported", "Webhook.ListAllSupported", "Webhook.Create", "Webhook.Update",
			"Webhook.Delete", "Webhook.DeleteAll", "Webhook.List"} {
			assert.True(t, contains(d.Methods(), m), "%s lists %s", name, m)
		}
	}

	raw, err := os.ReadFile(filepath.Join("profile", "dumps", "plus1-gen2.json"))
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	top["Shelly.ListMethods"] = json.RawMessage(`{"methods":["Shelly.GetStatus","Webhook.List","webhook.create","KVS.Get"]}`)
	data, err := json.Marshal(top)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "listed.json")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	p, err := profile.Lookup(file)
	require.NoError(t, err)
	d, err := device.New(device.Options{Model: p})
	require.NoError(t, err)
	for method, served := range map[string]bool{"Webhook.List": true, "Webhook.Create": true, "Webhook.Delete": false,
		"Webhook.ListSupported": false, "KVS.Get": true, "KVS.Set": false} {
		_, err := d.Dispatch(context.Background(), &shellyws.Request{Method: method, Params: json.RawMessage(
			`{"key":"k","cid":0,"event":"switch.on","urls":["http://127.0.0.1:9/"]}`)})
		noHandler := err != nil && shellyws.AsError(err).Code == shellyws.CodeNoHandler
		assert.Equal(t, !served, noHandler, "%s: %v", method, err)
	}
}
