package device_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
	"github.com/shellyws/shellyws/shellywstest"
)

// switchOn is a job's call list that turns switch:0 on.
var switchOn = []map[string]any{{"method": "Switch.Set", "params": map[string]any{"id": 0, "on": true}}}

// expectRev reads the NotifyStatus of a new schedule_rev.
func expectRev(t *testing.T, c *shellywstest.Conn, rev float64) {
	t.Helper()
	assert.JSONEq(t, `{"schedule_rev":`+jsonNum(rev)+`}`, string(c.ExpectStatusT(t).Changes["sys"]))
}

func TestScheduleCRUDAndErrors(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{})
	rev := call(t, c, "Sys.GetStatus", nil)["schedule_rev"].(float64)
	assert.Equal(t, map[string]any{"jobs": []any{}, "rev": rev}, call(t, c, "Schedule.List", nil))

	res := call(t, c, "Schedule.Create", map[string]any{"enable": false, "timespec": "0 0 22 * * FRI", "calls": switchOn})
	assert.Equal(t, map[string]any{"id": 1.0, "rev": rev + 1}, res)
	expectRev(t, c, rev+1)
	res = call(t, c, "Schedule.Create", map[string]any{"timespec": "@sunset-15m",
		"calls": []map[string]any{{"method": "Switch.Toggle", "params": map[string]any{"id": 1}}, {"method": "Shelly.GetStatus"}}})
	assert.Equal(t, map[string]any{"id": 2.0, "rev": rev + 2}, res)
	expectRev(t, c, rev+2)

	var raw json.RawMessage
	c.CallT(t, "Schedule.List", nil, &raw)
	assert.JSONEq(t, `{"jobs":[
		{"id":1,"enable":false,"timespec":"0 0 22 * * FRI","calls":[{"method":"Switch.Set","params":{"id":0,"on":true}}]},
		{"id":2,"enable":true,"timespec":"@sunset-15m","calls":[{"method":"Switch.Toggle","params":{"id":1}},{"method":"Shelly.GetStatus"}]}
	],"rev":`+jsonNum(rev+2)+`}`, string(raw))

	// Update is partial.
	assert.Equal(t, map[string]any{"rev": rev + 3}, call(t, c, "Schedule.Update", map[string]any{"id": 1, "enable": true}))
	expectRev(t, c, rev+3)
	job := call(t, c, "Schedule.List", nil)["jobs"].([]any)[0].(map[string]any)
	assert.Equal(t, true, job["enable"])
	assert.Equal(t, "0 0 22 * * FRI", job["timespec"])
	assert.EqualValues(t, rev+3, call(t, c, "Sys.GetStatus", nil)["schedule_rev"])

	before := rev + 3
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Schedule.Create", map[string]any{"timespec": "0 0 25 * * *", "calls": switchOn}, shellyws.CodeInvalidArgument, "timespec"},
		{"Schedule.Create", map[string]any{"timespec": "0 0 22 * *", "calls": switchOn}, shellyws.CodeInvalidArgument, "6 fields"},
		{"Schedule.Create", map[string]any{"calls": switchOn}, shellyws.CodeInvalidArgument, "'timespec'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise"}, shellyws.CodeInvalidArgument, "'calls'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{}}, shellyws.CodeInvalidArgument, "1 to 5"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{map[string]any{"params": map[string]any{}}}}, shellyws.CodeInvalidArgument, "'method'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{map[string]any{"method": ""}}}, shellyws.CodeInvalidArgument, "'method'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{"Switch.Set"}}, shellyws.CodeInvalidArgument, "'method'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{map[string]any{"method": "X.Y", "params": 5}}}, shellyws.CodeInvalidArgument, "'params'"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": "x"}, shellyws.CodeInvalidArgument, "array"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{switchOn[0], switchOn[0], switchOn[0], switchOn[0], switchOn[0], switchOn[0]}}, shellyws.CodeInvalidArgument, "1 to 5"},
		{"Schedule.Create", map[string]any{"timespec": 5, "calls": switchOn}, shellyws.CodeInvalidArgument, "timespec"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{map[string]any{"method": strings.Repeat("M", 129)}}}, shellyws.CodeInvalidArgument, "at most"},
		{"Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": []any{map[string]any{"method": "KVS.Set", "params": map[string]any{"value": strings.Repeat("v", 4096)}}}}, shellyws.CodeInvalidArgument, "at most"},
		{"Schedule.Update", map[string]any{"id": 9, "enable": false}, shellyws.CodeNotFound, "not found"},
		{"Schedule.Update", map[string]any{"enable": false}, shellyws.CodeInvalidArgument, "'id'"},
		{"Schedule.Update", map[string]any{"id": 1, "timespec": "bad"}, shellyws.CodeInvalidArgument, "timespec"},
		{"Schedule.Update", map[string]any{"id": 1, "calls": []any{}}, shellyws.CodeInvalidArgument, "calls"},
		{"Schedule.Delete", map[string]any{"id": 9}, shellyws.CodeNotFound, "not found"},
		{"Schedule.Delete", nil, shellyws.CodeInvalidArgument, "'id'"},
	} {
		e := rpcError(t, c, tc.method, tc.params)
		assert.Equal(t, tc.code, e.Code, "%s %v: %s", tc.method, tc.params, e.Message)
		assert.Contains(t, e.Message, tc.msg, "%s %v", tc.method, tc.params)
	}
	list := call(t, c, "Schedule.List", nil)
	assert.Equal(t, before, list["rev"], "refused calls change nothing")
	assert.Equal(t, "0 0 22 * * FRI", list["jobs"].([]any)[0].(map[string]any)["timespec"])

	assert.Equal(t, map[string]any{"rev": before + 1}, call(t, c, "Schedule.Delete", map[string]any{"id": 1}))
	expectRev(t, c, before+1)
	for i := range 19 {
		assert.EqualValues(t, 3+i, call(t, c, "Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": switchOn})["id"])
		c.ExpectStatusT(t)
	}
	e := rpcError(t, c, "Schedule.Create", map[string]any{"timespec": "@sunrise", "calls": switchOn})
	assert.Equal(t, shellyws.CodeResourceExhausted, e.Code, "a 21st job")
	assert.Equal(t, map[string]any{"rev": before + 21}, call(t, c, "Schedule.DeleteAll", nil))
	expectRev(t, c, before+21)
	assert.Empty(t, call(t, c, "Schedule.List", nil)["jobs"])
}

// TestScheduleRunsItsCalls: an enabled job runs on the host clock; its
// call is dispatched like a local request and its NotifyStatus goes out
// with source "schedule".
func TestScheduleRunsItsCalls(t *testing.T) {
	d, c, _ := connectKit(t, device.Options{})
	res := call(t, c, "Schedule.Create", map[string]any{"timespec": "*/1 * * * * *",
		"calls": []map[string]any{{"method": "Switch.Toggle", "params": map[string]any{"id": 0}}}})
	c.ExpectStatusT(t)
	for _, on := range []bool{true, false} {
		st := expectDelta(t, c, "switch:0")
		assert.Equal(t, on, st["output"])
		assert.Equal(t, device.SourceSchedule, st["source"])
	}
	call(t, c, "Schedule.Update", map[string]any{"id": res["id"], "enable": false})
	// The next frame is the new revision, whatever toggles were in flight.
	for {
		delta := c.ExpectStatusT(t)
		if _, ok := delta.Changes["sys"]; ok {
			break
		}
	}
	before := d.Switch(0).Output()
	// A call to a method the device lacks fails quietly; the others run.
	call(t, c, "Schedule.Create", map[string]any{"timespec": "*/1 * * * * *",
		"calls": []map[string]any{{"method": "Nope.Nothing"}, {"method": "Switch.Set", "params": map[string]any{"id": 1, "on": true}}}})
	c.ExpectStatusT(t)
	st := expectDelta(t, c, "switch:1")
	assert.Equal(t, true, st["output"])
	assert.Equal(t, before, d.Switch(0).Output(), "the disabled job does not run")
}

// TestScheduleSurvivesRebootAndRestart: jobs and schedule_rev are kept
// through Shelly.Reboot and by a new device on the same store, and run
// again after both.
func TestScheduleSurvivesRebootAndRestart(t *testing.T) {
	store := device.NewMemoryStore()
	_, srv, c, _ := connect(t, device.Options{Model: kitModel(t), ID: kitID, State: store})
	call(t, c, "Schedule.Create", map[string]any{"enable": false, "timespec": "0 0 22 * * FRI", "calls": switchOn})
	c.ExpectStatusT(t)
	call(t, c, "Schedule.Create", map[string]any{"timespec": "*/1 * * * * *", "calls": switchOn})
	c.ExpectStatusT(t)
	expectDelta(t, c, "switch:0")
	list := call(t, c, "Schedule.List", nil)

	c.CallT(t, "Shelly.Reboot", map[string]any{"delay_ms": 0}, nil)
	waitDone(t, c, "the connection")
	c = srv.AcceptT(t)
	fs := c.ExpectFullStatusT(t)
	assert.Equal(t, list["rev"], obj(t, fs.Status["sys"])["schedule_rev"])
	assert.Equal(t, list, call(t, c, "Schedule.List", nil))
	// The relay boots off (initial_state), and the job turns it on again.
	assert.Equal(t, true, expectDelta(t, c, "switch:0")["output"])

	_, _, c2, fs := connect(t, device.Options{Model: kitModel(t), ID: kitID, State: store})
	assert.Equal(t, list["rev"], obj(t, fs.Status["sys"])["schedule_rev"])
	assert.Equal(t, list, call(t, c2, "Schedule.List", nil))
	assert.Equal(t, true, expectDelta(t, c2, "switch:0")["output"])
}

func TestScheduleRefusedSaveChangesNothing(t *testing.T) {
	_, c, _ := connectKit(t, device.Options{State: failingStore{}})
	rev := call(t, c, "Schedule.List", nil)["rev"]
	e := rpcError(t, c, "Schedule.Create", map[string]any{"timespec": "*/1 * * * * *", "calls": switchOn})
	assert.Equal(t, shellyws.CodeInternal, e.Code)
	assert.NotContains(t, e.Message, "/secret")
	assert.Equal(t, map[string]any{"jobs": []any{}, "rev": rev}, call(t, c, "Schedule.List", nil))
}

// TestScheduleMethodsWhereTheModelHasThem: the Wall Display has schedules
// (and no scripts); battery models and the BLU gateway dongle have none.
func TestScheduleMethodsWhereTheModelHasThem(t *testing.T) {
	for name, want := range map[string]bool{"walldisplay-gen2": true, "plus1pm-gen2": true, "plusht-gen2": false, "bludongle-gen3": false} {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		d, err := device.New(device.Options{Model: p})
		require.NoError(t, err)
		res, err := d.Dispatch(context.Background(), &shellyws.Request{Method: "Shelly.ListMethods"})
		require.NoError(t, err)
		methods := string(res.(json.RawMessage))
		for _, m := range []string{"Schedule.Create", "Schedule.Update", "Schedule.Delete", "Schedule.DeleteAll", "Schedule.List"} {
			assert.Equal(t, want, strings.Contains(methods, `"`+m+`"`), "%s %s", name, m)
		}
		_, err = d.Dispatch(context.Background(), &shellyws.Request{Method: "Schedule.List"})
		assert.Equal(t, want, err == nil, "%s: %v", name, err)
	}
}

// TestScriptsAndJobsSurviveAProcessRestart: with StateDir, a device built
// again from the same directory (a new process) has the scripts (code,
// name, enable), the jobs and schedule_rev; its enabled script runs.
func TestScriptsAndJobsSurviveAProcessRestart(t *testing.T) {
	dir := t.TempDir()
	o := device.Options{Model: kitModel(t), ID: kitID, StateDir: dir}
	_, _, c, _ := connect(t, o)
	call(t, c, "Script.Create", map[string]any{"name": "kept"})
	code := scriptCode(5000)
	putCode(t, c, 1, code, 1024)
	call(t, c, "Script.SetConfig", map[string]any{"id": 1, "config": map[string]any{"enable": true}})
	call(t, c, "Schedule.Create", map[string]any{"enable": false, "timespec": "@sunrise+30m * * SAT,SUN", "calls": switchOn})
	jobs := call(t, c, "Schedule.List", nil)

	d2, err := device.New(o)
	require.NoError(t, err)
	dispatch := func(method string, params string) map[string]any {
		res, err := d2.Dispatch(context.Background(), &shellyws.Request{Method: method, Params: json.RawMessage(params)})
		require.NoError(t, err, method)
		raw, err := json.Marshal(res)
		require.NoError(t, err)
		return obj(t, raw)
	}
	assert.Equal(t, jobs, dispatch("Schedule.List", `{}`))
	assert.Equal(t, jobs["rev"], dispatch("Sys.GetStatus", `{}`)["schedule_rev"])
	assert.Equal(t, map[string]any{"data": code, "left": 0.0}, dispatch("Script.GetCode", `{"id":1}`))
	assert.Equal(t, map[string]any{"id": 1.0, "name": "kept", "enable": true}, dispatch("Script.GetConfig", `{"id":1}`))
	assert.Equal(t, true, dispatch("Script.GetStatus", `{"id":1}`)["running"], "enable: running after the boot")
}
