package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChannelFlags(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	require.NoError(t, os.WriteFile(pass, []byte("broker secret\r\nignored\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	const server = "-server=ws://127.0.0.1:1/"

	s, err := parseFlags([]string{server, "-udp", "127.0.0.1:1010", "-devices", "3", "-mqtt", "127.0.0.1:1883", "-mqtt-user", "u", "-mqtt-pass-file", pass})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:1010", s.udpAddr)
	assert.Equal(t, "broker secret", s.mqttPass, "first line, line ending dropped")
	o := s.channelOptions(2)
	assert.Equal(t, "127.0.0.1:1012", o.UDP, "device i on PORT+i")
	assert.Equal(t, "127.0.0.1:1883", o.MQTTServer)
	assert.Equal(t, "u", o.MQTTUser)
	assert.Equal(t, "broker secret", o.MQTTPass)

	s, err = parseFlags([]string{server, "-udp", "127.0.0.1:0", "-devices", "3"})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:0", s.channelOptions(2).UDP, "port 0: each a free port")
	assert.Empty(t, s.channelOptions(0).MQTTServer)

	s, err = parseFlags([]string{server, "-http", "127.0.0.1:0", "-mdns", "lo"})
	require.NoError(t, err)
	assert.Equal(t, "lo", s.mdnsIface)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{server, "-udp", "1010"}, `-udp "1010": want HOST:PORT`},
		{[]string{server, "-udp", "h:x"}, `port "x" is not a number`},
		{[]string{server, "-udp", "127.0.0.1:65535", "-devices", "2"}, "port 65536 does not exist"},
		{[]string{server, "-mqtt", "broker"}, `-mqtt "broker": want host:port`},
		{[]string{server, "-mqtt", "mqtt://b:1883"}, `-mqtt "mqtt://b:1883"`},
		{[]string{server, "-mqtt", "b:0"}, "the port must be a number from 1 to 65535"},
		{[]string{server, "-mqtt-user", "u"}, "-mqtt-user needs -mqtt"},
		{[]string{server, "-mqtt-pass-file", pass}, "-mqtt-pass-file needs -mqtt"},
		{[]string{server, "-mqtt", "b:1", "-mqtt-pass-file", empty}, "the first line is empty"},
		{[]string{server, "-mqtt", "b:1", "-mqtt-pass-file", filepath.Join(dir, "none")}, "-mqtt-pass-file: open"},
		{[]string{server, "-mdns", "lo"}, "-mdns needs -http"},
		{[]string{server, "-http", "127.0.0.1:0", "-mdns", "no-such-if0"}, `-mdns "no-such-if0": no such network interface`},
		{[]string{"-udp", "127.0.0.1:0"}, "-udp needs -server or -state"},
		{[]string{"-mqtt", "b:1"}, "-mqtt needs -server or -state"},
	} {
		_, err := parseFlags(tc.args)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
		var ue *usageError
		assert.ErrorAs(t, err, &ue, "%v: a usage error (exit 2)", tc.args)
	}
}

func TestChannelFlagsExitAndHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"-server", "ws://127.0.0.1:1/", "-mdns", "lo"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-mdns needs -http")

	out.Reset()
	assert.Equal(t, 0, run([]string{"-h"}, &out, &errOut))
	for _, want := range []string{"-udp ADDR", "-mqtt HOST:PORT", "-mqtt-user USER", "-mqtt-pass-file FILE", "shows in ps", "-mdns IFACE", "needs\n                 -http"} {
		assert.Contains(t, out.String(), want)
	}
}
