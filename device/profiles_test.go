package device_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/internal/jsonv"
	"github.com/shellyws/shellyws/shellywstest"
)

// profileMAC is the MAC every profile's test device gets: letters and
// digits, so a MAC in the wrong case would show.
const profileMAC = "0a1b2c3d4e5f"

// runtimeFields change with time and state; the tests compare their type,
// not their value.
var runtimeFields = map[string]bool{
	"uptime": true, "unixtime": true, "time": true, "cfg_rev": true, "restart_required": true, "reset_reason": true,
	// Energy counters run on from the dump's values.
	"total": true, "by_minute": true, "minute_ts": true,
	// A sleeping model's wake reason (sys.wakeup_reason) and clock sync.
	"boot": true, "cause": true, "last_sync_ts": true,
}

// clockFields are null on a sleeping model until its clock is set in a
// wake (protocol section 9), whatever type the dump shows.
var clockFields = map[string]bool{"time": true, "unixtime": true, "last_sync_ts": true}

func clockField(path string) bool { return clockFields[path[strings.LastIndexByte(path, '.')+1:]] }

// dumpOf reads a built-in dump's answers, decoded, with the captured MAC
// replaced by mac in every string the way a device of the model writes it.
func dumpOf(t *testing.T, p *device.Model, mac string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("profile", "dumps", p.Name+".json"))
	require.NoError(t, err)
	var top map[string]any
	require.NoError(t, json.Unmarshal(raw, &top))
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case string:
			return jsonv.Render(jsonv.Templated(t), p.DumpMAC, strings.ToUpper(mac))
		case map[string]any:
			for k, e := range t {
				t[k] = walk(e)
			}
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
		}
		return v
	}
	return walk(top).(map[string]any)
}

// sameShape checks that got has want's keys, recursively, with values of the
// same JSON type, and the same values except for runtime fields.
func sameShape(t *testing.T, path string, want, got any, values bool) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !assert.True(t, ok, "%s: want an object, got %T", path, got) {
			return
		}
		assert.ElementsMatch(t, keysOf(w), keysOf(g), "%s: keys", path)
		for k, wv := range w {
			if gv, ok := g[k]; ok {
				sameShape(t, path+"."+k, wv, gv, values && !runtimeFields[k])
			}
		}
	case []any:
		g, ok := got.([]any)
		if assert.True(t, ok, "%s: want an array, got %T", path, got) && values {
			assert.Equal(t, w, g, path)
		}
	default:
		if got == nil && clockField(path) {
			return
		}
		if values {
			assert.Equal(t, want, got, path)
		} else if want != nil {
			assert.IsType(t, want, got, path)
		}
	}
}

func keysOf(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func decode(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v), "%s", raw)
	return v
}

// TestEveryProfileAnswersLikeItsDump runs a device of every built-in profile
// against a server on loopback and compares what it answers with the dump:
// full status, Shelly.GetStatus, Shelly.GetDeviceInfo and Shelly.GetConfig
// have the dump's keys and values (own id and MAC; runtime fields of the same
// type), ws added where the dump lacks it, and every listed method answers.
func TestEveryProfileAnswersLikeItsDump(t *testing.T) {
	names := profile.Names()
	require.Len(t, names, 77, "every complete dump of the fixtures is a built-in profile")
	srv := shellywstest.NewServer(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := profile.Builtin(name)
			require.NoError(t, err)
			id := p.ID(profileMAC)
			startDevice(t, device.Options{Model: p, ID: id, Store: enabledStore(srv.URL())})
			c := srv.AcceptT(t)
			fs := c.ExpectFullStatusT(t)
			assert.Equal(t, id, fs.Src)
			dump := dumpOf(t, p, profileMAC)

			wantStatus := dump["Shelly.GetStatus"].(map[string]any)
			wantStatus["ws"] = map[string]any{"connected": true}
			// MQTT is the device's own: connected only while its client
			// is, whatever the captured device had.
			if m, ok := wantStatus["mqtt"].(map[string]any); ok {
				m["connected"] = false
			}
			gotFull := map[string]any{}
			for k, v := range fs.Status {
				gotFull[k] = decode(t, v)
			}
			sameShape(t, "full status", wantStatus, gotFull, false)
			assert.Equal(t, strings.ToUpper(profileMAC), gotFull["sys"].(map[string]any)["mac"])

			var raw json.RawMessage
			c.CallT(t, "Shelly.GetStatus", nil, &raw)
			sameShape(t, "status", wantStatus, decode(t, raw), true)
			assert.NotContains(t, strings.ToUpper(string(raw)), p.DumpMAC, "the captured MAC leaks")

			c.CallT(t, "Shelly.GetDeviceInfo", nil, &raw)
			info := decode(t, raw).(map[string]any)
			// Auth is the device's own: off until a password is set,
			// whatever the captured device had.
			wantInfo := dump["Shelly.GetDeviceInfo"].(map[string]any)
			if _, ok := wantInfo["auth_en"]; ok {
				wantInfo["auth_en"], wantInfo["auth_domain"] = false, nil
			}
			sameShape(t, "device info", wantInfo, info, true)
			assert.Equal(t, id, info["id"])

			c.CallT(t, "Shelly.GetConfig", nil, &raw)
			wantConfig := dump["Shelly.GetConfig"].(map[string]any)
			cfgJSON, _ := json.Marshal(shellyws.Config{Enable: true, Server: ptr(srv.URL()), SSLCA: ptr("ca.pem")})
			wantConfig["ws"] = decode(t, cfgJSON)
			sameShape(t, "config", wantConfig, decode(t, raw), true)
			assert.NotContains(t, strings.ToUpper(string(raw)), p.DumpMAC, "the captured MAC leaks")

			// Every listed method exists: each component's GetStatus and
			// GetConfig answer what Shelly.GetStatus/GetConfig hold.
			var list struct {
				Methods []string `json:"methods"`
			}
			c.CallT(t, "Shelly.ListMethods", nil, &list)
			assert.True(t, slices.IsSorted(list.Methods))
			assert.NotContains(t, list.Methods, device.SimInputMethod)
			for _, m := range []string{"Shelly.GetDeviceInfo", "Shelly.GetStatus", "Shelly.GetConfig", "Shelly.ListMethods",
				"Shelly.GetComponents", "Shelly.Reboot", "Ws.GetConfig", "Ws.SetConfig", "Ws.GetStatus"} {
				assert.Contains(t, list.Methods, m)
			}
			for key, want := range wantStatus {
				if _, isObj := want.(map[string]any); !isObj || key == "ws" {
					continue
				}
				method := device.Namespace(keyType(key)) + ".GetStatus"
				assert.Contains(t, list.Methods, method)
				var params any
				if n, ok := keyInstance(key); ok {
					params = map[string]any{"id": n}
				}
				c.CallT(t, method, params, &raw)
				sameShape(t, method, want, decode(t, raw), false)
			}
			for key, want := range wantConfig {
				if _, isObj := want.(map[string]any); !isObj {
					continue
				}
				method := device.Namespace(keyType(key)) + ".GetConfig"
				assert.Contains(t, list.Methods, method)
				var params any
				if n, ok := keyInstance(key); ok {
					params = map[string]any{"id": n}
				}
				c.CallT(t, method, params, &raw)
				sameShape(t, method, want, decode(t, raw), key != "sys")
			}
			e := rpcError(t, c, "Nope.Nothing", nil)
			assert.Equal(t, shellyws.CodeNoHandler, e.Code)
			assert.Equal(t, "No handler for Nope.Nothing", e.Message)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDumpListMethodsServedExactly loads a dump file that has
// Shelly.ListMethods: the device answers exactly that list.
func TestDumpListMethodsServedExactly(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("profile", "dumps", "plus1-gen2.json"))
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	top["Shelly.ListMethods"] = json.RawMessage(`{"methods":["Switch.Set","Shelly.GetStatus","Zz.Custom"]}`)
	data, err := json.Marshal(top)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "custom.json")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	p, err := profile.Lookup(file)
	require.NoError(t, err)
	assert.Equal(t, "shellyplus1", p.IDPrefix)

	_, _, c, _ := connect(t, device.Options{Model: p, ID: p.ID(profileMAC)})
	var res json.RawMessage
	c.CallT(t, "Shelly.ListMethods", nil, &res)
	assert.JSONEq(t, `{"methods":["Switch.Set","Shelly.GetStatus","Zz.Custom"]}`, string(res))
}

// TestWallDisplayIDStyle: the Wall Display writes its MAC upper-case in its
// id, and every string of its dump that held the MAC holds the device's.
func TestWallDisplayIDStyle(t *testing.T) {
	p, err := profile.Builtin("walldisplay-gen2")
	require.NoError(t, err)
	assert.Equal(t, "ShellyWallDisplay-0A1B2C3D4E5F", p.ID(profileMAC))
	d, err := device.New(device.Options{Model: p})
	require.NoError(t, err)
	assert.Regexp(t, `^ShellyWallDisplay-[0-9A-F]{12}$`, d.ID())
	assert.Equal(t, d.ID()[len(d.ID())-12:], d.MAC())
	_, ok := d.Status()["ws"]
	assert.True(t, ok, "ws added to a status that lacks it")
}

func ExampleNamespace() {
	for _, typ := range []string{"switch", "wifi", "em1data", "plugs_ui", "newthing"} {
		fmt.Println(device.Namespace(typ))
	}
	// Output:
	// Switch
	// WiFi
	// EM1Data
	// PLUGS_UI
	// Newthing
}
