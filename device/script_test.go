package device_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// scriptCode is code a byte-exact store must keep: multi-byte UTF-8 of
// every length, \r\n, tabs, ${ tokens, JSON's escapes, HTML characters
// and the JavaScript line separators.
func scriptCode(size int) string {
	piece := "let s = \"caf\u00e9 \u20ac \U0001F600 \u4e2d\u6587\";\r\n\tif (x < 1 && y > 2) { print('${status.x}'); }\r\n" +
		"// \\ \" \u2028 \u2029 \x7f end\n"
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(piece)
	}
	return b.String()
}

// putCode uploads code in chunks of about chunk bytes, cut on character
// boundaries, as clients do (append after the first), checking each len.
func putCode(t *testing.T, c *shellywstest.Conn, id int, code string, chunk int) {
	t.Helper()
	sent := 0
	for first := true; first || sent < len(code); first = false {
		end := min(sent+chunk, len(code))
		for end < len(code) && !utf8.RuneStart(code[end]) {
			end--
		}
		res := call(t, c, "Script.PutCode", map[string]any{"id": id, "code": code[sent:end], "append": !first})
		sent = end
		require.EqualValues(t, sent, res["len"], "bytes stored so far")
	}
}

// getCode reads code back with len-byte requests, offset advanced by the
// bytes of each answer.
func getCode(t *testing.T, c *shellywstest.Conn, id, n int) string {
	t.Helper()
	var b strings.Builder
	for range 100000 {
		var res struct {
			Data string `json:"data"`
			Left int    `json:"left"`
		}
		c.CallT(t, "Script.GetCode", map[string]any{"id": id, "offset": b.Len(), "len": n}, &res)
		require.True(t, utf8.ValidString(res.Data))
		b.WriteString(res.Data)
		if res.Left == 0 {
			return b.String()
		}
		require.NotEmpty(t, res.Data, "no progress at offset %d", b.Len())
	}
	t.Fatal("GetCode never ended")
	return ""
}

func TestScriptCodeRoundTripIsByteExact(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	assert.Equal(t, map[string]any{"id": 1.0}, call(t, c, "Script.Create", map[string]any{"name": "ble"}))
	code := scriptCode(20000)
	putCode(t, c, 1, code, 1024)

	for _, n := range []int{7, 1000, 4096} {
		assert.Equal(t, code, getCode(t, c, 1, n), "read back in %d-byte chunks", n)
	}
	var all struct {
		Data string `json:"data"`
		Left int    `json:"left"`
	}
	c.CallT(t, "Script.GetCode", map[string]any{"id": 1}, &all)
	assert.Equal(t, code, all.Data, "without len: the rest of the code")
	assert.Zero(t, all.Left)

	// A len that would cut a character ends the chunk before it; one
	// shorter than the character at offset returns that character.
	smile := strings.Index(code, "\U0001F600")
	res := call(t, c, "Script.GetCode", map[string]any{"id": 1, "offset": smile - 1, "len": 3})
	assert.Equal(t, " ", res["data"])
	assert.EqualValues(t, len(code)-smile, res["left"])
	res = call(t, c, "Script.GetCode", map[string]any{"id": 1, "offset": smile, "len": 1})
	assert.Equal(t, "\U0001F600", res["data"])
	assert.EqualValues(t, len(code)-smile-4, res["left"])
	e := rpcError(t, c, "Script.GetCode", map[string]any{"id": 1, "offset": smile + 1})
	assert.Equal(t, shellyws.CodeInvalidArgument, e.Code)
	assert.Contains(t, e.Message, "UTF-8")
	res = call(t, c, "Script.GetCode", map[string]any{"id": 1, "offset": len(code)})
	assert.Equal(t, map[string]any{"data": "", "left": 0.0}, res)

	// Without append the code is replaced; read back a byte at a time.
	short := scriptCode(1)
	assert.EqualValues(t, len(short), call(t, c, "Script.PutCode", map[string]any{"id": 1, "code": short})["len"])
	for _, n := range []int{1, 2, 3} {
		assert.Equal(t, short, getCode(t, c, 1, n), "read back in %d-byte chunks", n)
	}
}

func TestScriptLimitsAndErrors(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	for i := 1; i <= 10; i++ {
		assert.EqualValues(t, i, call(t, c, "Script.Create", map[string]any{"name": "s"})["id"])
	}
	e := rpcError(t, c, "Script.Create", map[string]any{"name": "eleventh"})
	assert.Equal(t, shellyws.CodeResourceExhausted, e.Code)
	call(t, c, "Script.Delete", map[string]any{"id": 4})
	assert.EqualValues(t, 11, call(t, c, "Script.Create", nil)["id"], "ids are not reused while a higher one exists")
	assert.Equal(t, "script 11", call(t, c, "Script.GetConfig", map[string]any{"id": 11})["name"], "the default name")

	big := strings.Repeat("x", 65535)
	assert.EqualValues(t, 65535, call(t, c, "Script.PutCode", map[string]any{"id": 1, "code": big})["len"], "the limit itself fits")
	for _, p := range []map[string]any{
		{"id": 1, "code": "y", "append": true},
		{"id": 2, "code": big + "y"},
	} {
		e = rpcError(t, c, "Script.PutCode", p)
		assert.Equal(t, shellyws.CodeResourceExhausted, e.Code)
	}
	assert.Len(t, getCode(t, c, 1, 65535), 65535, "a refused append changes nothing")

	call(t, c, "Script.Start", map[string]any{"id": 2})
	c.ExpectStatusT(t)
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Script.GetCode", map[string]any{"id": 4}, shellyws.CodeNotFound, "not found"},
		{"Script.PutCode", map[string]any{"id": 4, "code": ""}, shellyws.CodeNotFound, "not found"},
		{"Script.Start", map[string]any{"id": 99}, shellyws.CodeNotFound, "not found"},
		{"Script.Stop", map[string]any{"id": 99}, shellyws.CodeNotFound, "not found"},
		{"Script.Delete", map[string]any{"id": 99}, shellyws.CodeNotFound, "not found"},
		{"Script.GetStatus", map[string]any{"id": 99}, shellyws.CodeNotFound, "not found"},
		{"Script.GetConfig", map[string]any{"id": 99}, shellyws.CodeNotFound, "not found"},
		{"Script.SetConfig", map[string]any{"id": 99, "config": map[string]any{}}, shellyws.CodeNotFound, "not found"},
		{"Script.Eval", map[string]any{"id": 99, "code": "1"}, shellyws.CodeNotFound, "not found"},
		{"Script.Start", nil, shellyws.CodeInvalidArgument, "'id'"},
		{"Script.PutCode", map[string]any{"id": 3}, shellyws.CodeInvalidArgument, "'code'"},
		{"Script.PutCode", map[string]any{"id": 3, "code": 5}, shellyws.CodeInvalidArgument, "code"},
		{"Script.PutCode", map[string]any{"id": 2, "code": "x"}, shellyws.CodeFailedPrecondition, "running"},
		{"Script.Eval", map[string]any{"id": 3, "code": "1+1"}, shellyws.CodeFailedPrecondition, "Script is not running"},
		{"Script.Eval", map[string]any{"id": 2, "code": "1+1"}, shellyws.CodeUnavailable, "no script engine"},
		{"Script.Eval", map[string]any{"id": 2}, shellyws.CodeInvalidArgument, "'code'"},
		{"Script.GetCode", map[string]any{"id": 1, "offset": -1}, shellyws.CodeInvalidArgument, "offset"},
		{"Script.GetCode", map[string]any{"id": 1, "offset": 65536}, shellyws.CodeInvalidArgument, "offset"},
		{"Script.GetCode", map[string]any{"id": 1, "len": 0}, shellyws.CodeInvalidArgument, "len"},
		{"Script.Create", map[string]any{"name": 5}, shellyws.CodeInvalidArgument, "name"},
		{"Script.SetConfig", map[string]any{"id": 3, "config": map[string]any{"enable": "yes"}}, shellyws.CodeInvalidArgument, "config.enable"},
		{"Script.SetConfig", map[string]any{"id": 3, "config": map[string]any{"name": nil}}, shellyws.CodeInvalidArgument, "name"},
		{"Script.SetConfig", map[string]any{"id": 3, "config": map[string]any{"name": strings.Repeat("n", 256)}}, shellyws.CodeInvalidArgument, "name"},
		{"Script.SetConfig", map[string]any{"id": 3}, shellyws.CodeInvalidArgument, "'config'"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v: %s", tc.method, tc.params, e.Message)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
	assert.Equal(t, "s", call(t, c, "Script.GetConfig", map[string]any{"id": 3})["name"], "refused changes change nothing")
}

// scriptListOf returns Script.List's scripts by id.
func scriptListOf(t *testing.T, c *shellywstest.Conn) map[int]map[string]any {
	t.Helper()
	var res struct {
		Scripts []map[string]any `json:"scripts"`
	}
	c.CallT(t, "Script.List", nil, &res)
	out := map[int]map[string]any{}
	for _, s := range res.Scripts {
		out[int(s["id"].(float64))] = s
	}
	return out
}

func TestScriptStartStopAndBoot(t *testing.T) {
	_, srv, c, _ := connect(t, device.Options{Model: kitModel(t), ID: kitID})
	call(t, c, "Script.Create", map[string]any{"name": "boots"})
	call(t, c, "Script.Create", map[string]any{"name": "stays"})

	assert.Equal(t, map[string]any{"was_running": false}, call(t, c, "Script.Start", map[string]any{"id": 1}))
	st := expectDelta(t, c, "script:1")
	assert.Equal(t, true, st["running"])
	assert.EqualValues(t, 1, st["id"])
	assert.Contains(t, st, "mem_used")
	assert.Equal(t, map[string]any{"was_running": true}, call(t, c, "Script.Start", map[string]any{"id": 1}), "no change, no delta")
	call(t, c, "Script.Start", map[string]any{"id": 2})
	assert.Equal(t, true, expectDelta(t, c, "script:2")["running"], "the next delta is script 2's")
	assert.Equal(t, true, call(t, c, "Script.GetStatus", map[string]any{"id": 2})["running"])

	// enable follows section 15.1 and takes effect at the next boot.
	rev := call(t, c, "Sys.GetStatus", nil)["cfg_rev"].(float64)
	assert.Equal(t, map[string]any{"restart_required": false},
		call(t, c, "Script.SetConfig", map[string]any{"id": 1, "config": map[string]any{"enable": true, "other": 1}}))
	assert.JSONEq(t, `{"cfg_rev":`+jsonNum(rev+1)+`}`, string(c.ExpectStatusT(t).Changes["sys"]))
	ev := c.ExpectEventT(t)
	require.Len(t, ev.Events, 1)
	assert.Equal(t, "script:1", ev.Events[0].Component)
	require.NotNil(t, ev.Events[0].ID)
	assert.Equal(t, 1, *ev.Events[0].ID)
	assert.Equal(t, "config_changed", ev.Events[0].Event)
	assert.Equal(t, map[string]any{"id": 1.0, "name": "boots", "enable": true}, call(t, c, "Script.GetConfig", map[string]any{"id": 1}))

	assert.Equal(t, map[string]any{"was_running": true}, call(t, c, "Script.Stop", map[string]any{"id": 1}))
	assert.Equal(t, map[string]any{"id": 1.0, "running": false, "mem_free": 25200.0}, expectDelta(t, c, "script:1"))

	// After a reboot the enabled script runs and the other does not.
	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 0}, nil)
	waitDone(t, c, "the connection")
	c = srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, true, obj(t, fs.Status["script:1"])["running"])
	assert.Equal(t, false, obj(t, fs.Status["script:2"])["running"])
	list := scriptListOf(t, c)
	assert.Equal(t, map[string]any{"id": 1.0, "name": "boots", "enable": true, "running": true}, list[1])
	assert.Equal(t, map[string]any{"id": 2.0, "name": "stays", "enable": false, "running": false}, list[2])
}

func TestScriptsAreComponents(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	comps := call(t, c, "Shelly.GetComponents", nil)
	total := comps["total"].(float64)
	assert.NotContains(t, call(t, c, "Shelly.GetStatus", nil), "script:1")

	call(t, c, "Script.Create", map[string]any{"name": "a"})
	call(t, c, "Script.Create", map[string]any{"name": "b"})
	call(t, c, "Script.Delete", map[string]any{"id": 1})
	var raw json.RawMessage
	c.CallT(t, "Shelly.GetStatus", nil, &raw)
	st := obj(t, raw)
	assert.NotContains(t, st, "script:1")
	assert.Equal(t, map[string]any{"id": 2.0, "running": false, "mem_free": 25200.0}, st["script:2"])
	assert.Less(t, strings.Index(string(raw), `"mqtt"`), strings.Index(string(raw), `"script:2"`), "alphabetical place")
	assert.Less(t, strings.Index(string(raw), `"script:2"`), strings.Index(string(raw), `"switch:0"`), "alphabetical place")
	cfg := call(t, c, "Shelly.GetConfig", nil)
	assert.Equal(t, map[string]any{"id": 2.0, "name": "b", "enable": false}, cfg["script:2"])

	comps = call(t, c, "Shelly.GetComponents", map[string]any{"keys": []string{"script:2"}})
	require.Len(t, comps["components"], 1)
	entry := comps["components"].([]any)[0].(map[string]any)
	assert.Equal(t, "script:2", entry["key"])
	assert.Equal(t, map[string]any{"id": 2.0, "name": "b", "enable": false}, entry["config"])
	assert.Equal(t, map[string]any{"id": 2.0, "running": false, "mem_free": 25200.0}, entry["status"])
	assert.EqualValues(t, total+1, call(t, c, "Shelly.GetComponents", nil)["total"])
}

// TestDumpScriptsArePresent: a dump's script:N is a script of the device,
// named as captured, with no code.
func TestDumpScriptsArePresent(t *testing.T) {
	_, c, fs := connectProfile(t, "plus1pm-gen2", device.Options{})
	assert.JSONEq(t, `{"id":1,"mem_free":25200,"running":false}`, string(fs.Status["script:1"]))
	list := scriptListOf(t, c)
	assert.Equal(t, map[string]any{"id": 1.0, "name": "aioshelly_ble_integration", "enable": false, "running": false}, list[1])
	assert.Equal(t, map[string]any{"data": "", "left": 0.0}, call(t, c, "Script.GetCode", map[string]any{"id": 1}))
	var raw json.RawMessage
	c.CallT(t, "Script.GetConfig", map[string]any{"id": 1}, &raw)
	assert.Equal(t, `{"enable":false,"id":1,"name":"aioshelly_ble_integration"}`, string(raw), "the dump's shape")
	assert.EqualValues(t, 2, call(t, c, "Script.Create", nil)["id"])
}

func TestScriptsSurviveANewDevice(t *testing.T) {
	store := device.NewMemoryStore()
	o := device.Options{Model: kitModel(t), ID: kitID, State: store}
	_, _, c, _ := connect(t, o)
	call(t, c, "Script.Create", map[string]any{"name": "auto"})
	call(t, c, "Script.Create", map[string]any{"name": "manual"})
	code := scriptCode(3000)
	putCode(t, c, 1, code, 1024)
	putCode(t, c, 2, "print(2);\r\n", 1024)
	call(t, c, "Script.SetConfig", map[string]any{"id": 1, "config": map[string]any{"enable": true}})
	call(t, c, "Script.Start", map[string]any{"id": 2})

	// A new device on the same store is the same device after a restart
	// of its process: code, names and enable kept, running from enable.
	_, _, c2, fs := connect(t, device.Options{Model: kitModel(t), ID: kitID, State: store})
	assert.Equal(t, true, obj(t, fs.Status["script:1"])["running"])
	assert.Equal(t, false, obj(t, fs.Status["script:2"])["running"], "running is RAM")
	assert.Equal(t, code, getCode(t, c2, 1, 1000))
	assert.Equal(t, "print(2);\r\n", getCode(t, c2, 2, 1000))
	list := scriptListOf(t, c2)
	assert.Equal(t, "manual", list[2]["name"])
	assert.EqualValues(t, 3, call(t, c2, "Script.Create", nil)["id"])
}

func TestScriptRefusedSaveChangesNothing(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{State: failingStore{}})
	e := rpcError(t, c, "Script.Create", map[string]any{"name": "x"})
	assert.Equal(t, shellyws.CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "/secret")
	assert.Empty(t, scriptListOf(t, c))
}

// TestScriptMethodsOnEveryChannel: Script.* answer over HTTP as on the
// websocket, and Shelly.ListMethods lists them only on models that have
// scripts.
func TestScriptMethodsOnEveryChannel(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	h := shellyws.NewHandler(d.Component())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	get := func(path string) string {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		return string(body)
	}
	assert.JSONEq(t, `{"id":1}`, get(`/rpc/Script.Create?name="web"`))
	resp, err := srv.Client().Post(srv.URL+"/rpc", "application/json",
		strings.NewReader(`{"id":5,"method":"Script.PutCode","params":{"id":1,"code":"a\u00e9\r\n"}}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `"result":{"len":5}`)
	assert.JSONEq(t, `{"data":"aé\r\n","left":0}`, get("/rpc/Script.GetCode?id=1"))
	assert.Equal(t, "web", scriptListOf(t, c)[1]["name"], "one device behind every channel")

	var list struct{ Methods []string }
	c.CallT(t, "Shelly.ListMethods", nil, &list)
	for _, m := range []string{"Script.Create", "Script.PutCode", "Script.GetCode", "Script.List", "Script.Start", "Script.Stop",
		"Script.Delete", "Script.Eval", "Script.GetStatus", "Script.GetConfig", "Script.SetConfig"} {
		assert.Contains(t, list.Methods, m)
	}
	for name, want := range map[string]bool{"plusht-gen2": false, "walldisplay-gen2": false, "pro4pm-gen2": true} {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		d, err := device.New(device.Options{Model: p})
		require.NoError(t, err)
		res, err := d.Dispatch(context.Background(), &shellyws.Request{Method: "Shelly.ListMethods"})
		require.NoError(t, err)
		assert.Equal(t, want, strings.Contains(string(res.(json.RawMessage)), `"Script.PutCode"`), name)
	}
}

// TestAioshellyScriptCalls plays aioshelly's script calls
// (aioshelly/rpc_device/device.py and ble/__init__.py) and reads the
// answers as it does: Script.List's scripts[].name and id,
// Script.GetCode's data compared with the code it would upload, PutCode
// without append (one call, the whole code), Stop before PutCode, Start.
func TestAioshellyScriptCalls(t *testing.T) {
	_, c, _ := connectProfile(t, "plus1pm-gen2", device.Options{})
	const name = "aioshelly_ble_integration"
	byName := func() map[string]int {
		var res struct {
			Scripts []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"scripts"`
		}
		c.CallT(t, "Script.List", nil, &res)
		m := map[string]int{}
		for _, s := range res.Scripts {
			m[s.Name] = s.ID
		}
		return m
	}
	id, ok := byName()[name]
	require.True(t, ok, "the dump's script is listed")
	code := strings.ReplaceAll(scriptCode(2500), "\U0001F600", "") // an ASCII-heavy script, as BLE_CODE
	var got struct {
		Data string `json:"data"`
	}
	c.CallT(t, "Script.GetCode", map[string]any{"id": id, "offset": 0}, &got)
	require.NotEqual(t, code, got.Data, "needs putcode")
	c.CallT(t, "Script.Stop", map[string]any{"id": id}, nil)
	c.CallT(t, "Script.PutCode", map[string]any{"id": id, "code": code}, nil)
	c.CallT(t, "Script.Start", map[string]any{"id": id}, nil)
	assert.Equal(t, true, expectDelta(t, c, "script:1")["running"])
	c.CallT(t, "Script.GetCode", map[string]any{"id": id, "offset": 0}, &got)
	assert.Equal(t, code, got.Data, "the next start finds it unchanged")
	// Home Assistant reads the first 5 KiB of every script for its events.
	c.CallT(t, "Script.GetCode", map[string]any{"id": id, "offset": 0, "len": 5120}, &got)
	assert.Equal(t, code[:len(got.Data)], got.Data)

	c.CallT(t, "Script.Create", map[string]any{"name": "other"}, nil)
	assert.Equal(t, 2, byName()["other"])
}

// TestScriptFullStatusAfterStart: Device.Status, the full status, carries
// the scripts' state.
func TestScriptFullStatusAfterStart(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	call(t, c, "Script.Create", nil)
	call(t, c, "Script.Start", map[string]any{"id": 1})
	c.ExpectStatusT(t)
	m := d.Status()
	require.Contains(t, m, "script:1")
	assert.Contains(t, string(m["script:1"].(json.RawMessage)), `"running":true`)
}
