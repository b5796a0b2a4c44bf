package device_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// kvsRevDelta reads the NotifyStatus a KVS or webhook change sends and
// returns the sys field it carries.
func kvsRevDelta(t *testing.T, c *shellywstest.Conn, field string) float64 {
	t.Helper()
	delta := c.ExpectStatusT(t)
	sys := obj(t, delta.Changes["sys"])
	require.Contains(t, sys, field, "delta %v", sys)
	return sys[field].(float64)
}

func TestKVSSetGetListDelete(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	assert.EqualValues(t, 0, call(t, c, "Sys.GetStatus", nil)["kvs_rev"])

	// A value is any JSON, given back token for token: number literals,
	// escapes and key order as sent, no HTML escaping.
	// (Written by hand: encoding/json would escape '<' and '&'.)
	const value = `{"b":1.50,"a":[true,null,"\u00e9<&>"],"n":-0.0e3}`
	raw, err := c.CallRaw(testCtx(t), []byte(`{"id":1,"src":"t","method":"KVS.Set","params":{"key":"cfg/one","value": `+value+` }}`))
	require.NoError(t, err)
	res := obj(t, raw)["result"].(map[string]any)
	assert.EqualValues(t, 1, res["rev"])
	etag1, _ := res["etag"].(string)
	assert.NotEmpty(t, etag1)
	assert.EqualValues(t, 1, kvsRevDelta(t, c, "kvs_rev"))

	c.CallT(t, "KVS.Get", map[string]any{"key": "cfg/one"}, &raw)
	assert.Equal(t, `{"etag":"`+etag1+`","value":`+value+`}`, string(raw))

	// The etag changes with every write, even of the same value.
	res = call(t, c, "KVS.Set", map[string]any{"key": "cfg/one", "value": json.RawMessage(value), "etag": etag1})
	etag2 := res["etag"].(string)
	assert.NotEqual(t, etag1, etag2)
	assert.EqualValues(t, 2, kvsRevDelta(t, c, "kvs_rev"))

	// Etags guard writes: a stale one, or one for a missing key, is -109.
	for _, p := range []map[string]any{
		{"key": "cfg/one", "value": 1, "etag": etag1},
		{"key": "nope", "value": 1, "etag": etag2},
	} {
		assert.Equal(t, shellyws.CodeFailedPrecondition, rpcError(t, c, "KVS.Set", p).Code, "%v", p)
	}
	assert.Equal(t, shellyws.CodeFailedPrecondition, rpcError(t, c, "KVS.Delete", map[string]any{"key": "cfg/one", "etag": etag1}).Code)

	call(t, c, "KVS.Set", map[string]any{"key": "cfg/two", "value": "x"})
	c.ExpectStatusT(t)
	call(t, c, "KVS.Set", map[string]any{"key": "other", "value": nil})
	c.ExpectStatusT(t)
	var list struct {
		Keys map[string]struct{ Etag string } `json:"keys"`
		Rev  int                              `json:"rev"`
	}
	c.CallT(t, "KVS.List", map[string]any{"match": "cfg/*"}, &list)
	assert.Equal(t, 4, list.Rev)
	assert.Len(t, list.Keys, 2)
	assert.Equal(t, etag2, list.Keys["cfg/one"].Etag)
	c.CallT(t, "KVS.List", nil, &list)
	assert.Len(t, list.Keys, 3, "match defaults to *")
	assert.Equal(t, map[string]any{"etag": list.Keys["other"].Etag, "value": nil}, call(t, c, "KVS.Get", map[string]any{"key": "other"}))

	e := rpcError(t, c, "KVS.Get", map[string]any{"key": "nope"})
	assert.Equal(t, shellyws.CodeNotFound, e.Code)
	assert.Equal(t, shellyws.CodeNotFound, rpcError(t, c, "KVS.Delete", map[string]any{"key": "nope"}).Code)

	res = call(t, c, "KVS.Delete", map[string]any{"key": "cfg/one", "etag": etag2})
	assert.EqualValues(t, 5, res["rev"])
	assert.EqualValues(t, 5, kvsRevDelta(t, c, "kvs_rev"))
	assert.Equal(t, shellyws.CodeNotFound, rpcError(t, c, "KVS.Get", map[string]any{"key": "cfg/one"}).Code)
	assert.EqualValues(t, 5, call(t, c, "Sys.GetStatus", nil)["kvs_rev"])
	st := call(t, c, "Shelly.GetStatus", nil)
	assert.EqualValues(t, 5, st["sys"].(map[string]any)["kvs_rev"])

	// Refused calls change nothing.
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"KVS.Set", map[string]any{"value": 1}, shellyws.CodeInvalidArgument, "'key'"},
		{"KVS.Set", map[string]any{"key": "k"}, shellyws.CodeInvalidArgument, "'value'"},
		{"KVS.Set", map[string]any{"key": "", "value": 1}, shellyws.CodeInvalidArgument, "'key'"},
		{"KVS.Set", map[string]any{"key": 5, "value": 1}, shellyws.CodeInvalidArgument, "key"},
		{"KVS.Set", map[string]any{"key": strings.Repeat("k", 43), "value": 1}, shellyws.CodeInvalidArgument, "42"},
		{"KVS.Set", map[string]any{"key": "k", "value": strings.Repeat("v", 252)}, shellyws.CodeInvalidArgument, "253"},
		{"KVS.Get", nil, shellyws.CodeInvalidArgument, "'key'"},
		{"KVS.GetMany", map[string]any{"offset": -1}, shellyws.CodeInvalidArgument, "offset"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v", tc.method, tc.params)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
	assert.EqualValues(t, 5, call(t, c, "Sys.GetStatus", nil)["kvs_rev"])
}

func TestKVSLimitsAndPages(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	// The limits are inclusive: a 42-character key, a value of 253 bytes
	// (a string of 251 characters and its quotes).
	call(t, c, "KVS.Set", map[string]any{"key": strings.Repeat("k", 42), "value": strings.Repeat("v", 251)})
	for i := 1; i < 50; i++ {
		call(t, c, "KVS.Set", map[string]any{"key": fmt.Sprintf("pfx/%02d", i), "value": i})
	}
	e := rpcError(t, c, "KVS.Set", map[string]any{"key": "the51st", "value": 1})
	assert.Equal(t, shellyws.CodeResourceExhausted, e.Code)
	call(t, c, "KVS.Set", map[string]any{"key": "pfx/07", "value": "replaced"}) // an existing key still takes a value
	call(t, c, "KVS.Delete", map[string]any{"key": "pfx/01"})
	call(t, c, "KVS.Set", map[string]any{"key": "the51st", "value": 1})

	// GetMany pages: KVSPageSize items a page, keys in order, until total.
	type page struct {
		Items []struct {
			Key   string          `json:"key"`
			Etag  string          `json:"etag"`
			Value json.RawMessage `json:"value"`
		} `json:"items"`
		Offset int `json:"offset"`
		Total  int `json:"total"`
	}
	var keys []string
	for offset := 0; ; {
		var p page
		c.CallT(t, "KVS.GetMany", map[string]any{"match": "pfx/*", "offset": offset}, &p)
		assert.Equal(t, 48, p.Total)
		assert.Equal(t, offset, p.Offset)
		assert.LessOrEqual(t, len(p.Items), device.KVSPageSize)
		for _, it := range p.Items {
			keys = append(keys, it.Key)
			assert.NotEmpty(t, it.Etag)
		}
		offset += len(p.Items)
		if len(p.Items) == 0 || offset >= p.Total {
			break
		}
	}
	require.Len(t, keys, 48)
	assert.Equal(t, "pfx/02", keys[0])
	assert.Equal(t, "pfx/49", keys[47])
	var p page
	c.CallT(t, "KVS.GetMany", map[string]any{"match": "pfx/07"}, &p)
	require.Len(t, p.Items, 1)
	assert.Equal(t, `"replaced"`, string(p.Items[0].Value))
	c.CallT(t, "KVS.GetMany", map[string]any{"offset": 100}, &p)
	assert.Empty(t, p.Items)
	assert.Equal(t, 50, p.Total)

	// Globs: '*' is any run of characters; everything else is itself.
	for match, want := range map[string]int{"*": 50, "pfx/*": 48, "*1st": 1, "p*/1*": 10, "pfx/0?": 0, "": 0, "pfx/10": 1, "**": 50} {
		var list struct {
			Keys map[string]any `json:"keys"`
		}
		c.CallT(t, "KVS.List", map[string]any{"match": match}, &list)
		assert.Len(t, list.Keys, want, "match %q", match)
	}
}

// TestKVSRefusedSaveChangesNothing: a store that refuses the write leaves
// the KVS and kvs_rev as they were, with no path on the wire.
func TestKVSRefusedSaveChangesNothing(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{State: failingStore{}})
	e := rpcError(t, c, "KVS.Set", map[string]any{"key": "k", "value": 1})
	assert.Equal(t, shellyws.CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "/secret")
	assert.Equal(t, shellyws.CodeNotFound, rpcError(t, c, "KVS.Get", map[string]any{"key": "k"}).Code)
	assert.EqualValues(t, 0, call(t, c, "Sys.GetStatus", nil)["kvs_rev"])
}

// TestKVSOnEveryChannel: the same KVS over the outbound connection, HTTP
// GET and POST, and the device's own websocket.
func TestKVSOnEveryChannel(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	h := shellyws.NewHandler(d.Component())
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); h.Close() })

	get := func(method, query string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, hs.URL+"/rpc/"+method+"?"+query, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	status, body := get("KVS.Set", "key=via-get&value="+url.QueryEscape(`{"n":2.50}`))
	require.Equal(t, http.StatusOK, status, body)
	c.ExpectStatusT(t)

	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, hs.URL+"/rpc",
		strings.NewReader(`{"id":1,"method":"KVS.Set","params":{"key":"via-post","value":[1,2]}}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c.ExpectStatusT(t)

	ws := shellywstest.DialDevice(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/rpc")
	var raw json.RawMessage
	ws.CallT(t, "KVS.Get", map[string]any{"key": "via-get"}, &raw)
	assert.Contains(t, string(raw), `"value":{"n":2.50}`)
	status, body = get("KVS.Get", "key=via-post")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"value":[1,2]`)
	c.CallT(t, "KVS.Get", map[string]any{"key": "via-post"}, &raw)
	assert.Contains(t, string(raw), `"value":[1,2]`)
}

// TestKVSWhereTheModelHasIt: the kit's rule for models without a captured
// Shelly.ListMethods is sys.kvs_rev in the dump's status; the methods are
// listed exactly where they are served.
func TestKVSWhereTheModelHasIt(t *testing.T) {
	for name, want := range map[string]bool{"plus1pm-gen2": true, "plusht-gen2": true, "walldisplay-gen2": false} {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		d, err := device.New(device.Options{Model: p})
		require.NoError(t, err)
		_, err = d.Dispatch(context.Background(), &shellyws.Request{Method: "KVS.List"})
		assert.Equal(t, want, err == nil, "%s: %v", name, err)
		assert.Equal(t, want, contains(d.Methods(), "KVS.Set"), name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
