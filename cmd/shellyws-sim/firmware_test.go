package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// TestParseUpdateFlags: -update-stable, -update-beta and -ota-time
// (protocol section 15.2).
func TestParseUpdateFlags(t *testing.T) {
	s, err := parseFlags([]string{"-server", "ws://h"})
	require.NoError(t, err)
	assert.Nil(t, s.updateStable, "the dump's offer by default")
	assert.Nil(t, s.updateBeta)
	assert.Equal(t, 10*time.Second, s.otaTime)

	s, err = parseFlags([]string{"-server", "ws://h", "-update-stable", "9.9.9", "-update-beta", "", "-ota-time", "1s"})
	require.NoError(t, err)
	require.NotNil(t, s.updateStable)
	assert.Equal(t, "9.9.9", *s.updateStable)
	require.NotNil(t, s.updateBeta, "'' is set: none offered")
	assert.Empty(t, *s.updateBeta)
	assert.Equal(t, time.Second, s.otaTime)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-server", "ws://h", "-update-stable", "9.9.9/x"}, `-update-stable "9.9.9/x": want a version`},
		{[]string{"-server", "ws://h", "-update-beta", "1 2"}, `-update-beta "1 2"`},
		{[]string{"-server", "ws://h", "-ota-time", "10ms"}, "-ota-time 10ms: want 100ms to 1h0m0s"},
		{[]string{"-server", "ws://h", "-ota-time", "2h"}, "-ota-time 2h0m0s"},
		{[]string{"-update-stable", "9.9.9"}, "-update-stable needs -server or -state"},
		{[]string{"-ota-time", "1s"}, "-ota-time needs -server or -state"},
	} {
		_, err := parseFlags(tc.args)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.msg, "%v", tc.args)
	}

	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	for _, flag := range []string{"-update-stable VER", "-update-beta VER", "-ota-time DUR"} {
		assert.Contains(t, stdout.String(), flag)
	}
}

// TestDescribeRequestHidesSecrets: the single device's transcript of
// requests shows no URL credentials or query values (Shelly.Update's url,
// Ws.SetConfig's server) and no password or ha1.
func TestDescribeRequestHidesSecrets(t *testing.T) {
	for _, tc := range []struct {
		method, params string
		keep           []string
	}{
		{"Shelly.Update", `{"url":"http://admin:hunter22@127.0.0.1:8000/fw.zip?token=s3cr3t"}`, []string{"Shelly.Update", "127.0.0.1:8000/fw.zip"}},
		{"Ws.SetConfig", `{"config":{"server":"wss://fm.example/shelly?token=s3cr3t","enable":true}}`, []string{"fm.example/shelly", `"enable":true`}},
		{"Shelly.SetAuth", `{"user":"admin","realm":"shellyplus1pm-aabbccdd0020","ha1":"hunter22hunter22"}`, []string{"realm"}},
		{"MQTT.SetConfig", `{"config":{"user":"u","pass":"hunter22"}}`, []string{`"user":"u"`}},
	} {
		got := describeRequest(&shellyws.Request{Method: tc.method, Params: json.RawMessage(tc.params), Src: "fm"}, nil)
		for _, secret := range []string{"hunter22", "s3cr3t"} {
			assert.NotContains(t, got, secret, tc.method)
		}
		for _, k := range tc.keep {
			assert.Contains(t, got, k, tc.method)
		}
	}
	got := describeRequest(&shellyws.Request{Method: "Switch.Set", Params: json.RawMessage(`{"id":0,"on":true}`)}, nil)
	assert.Equal(t, `<- Switch.Set {"id":0,"on":true}`, got, "nothing secret: as sent")
}
