//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/internal/mosquitto"
	"github.com/shellyws/shellyws/shellywstest"
)

// udpAddrOf waits for the simulator's UDP line and returns the address.
func udpAddrOf(t *testing.T, p *proc) *net.UDPAddr {
	t.Helper()
	p.out.waitFor(t, "UDP RPC on ")
	m := regexp.MustCompile(`UDP RPC on (127\.0\.0\.1:\d+)`).FindStringSubmatch(p.out.String())
	require.NotNil(t, m, p.out.String())
	addr, err := net.ResolveUDPAddr("udp", m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, addr.Port, 1024)
	return addr
}

// udpClient is a socket on 127.0.0.1 talking unicast to one device.
type udpClient struct {
	conn net.PacketConn
	to   *net.UDPAddr
}

func newUDPClient(t *testing.T, to *net.UDPAddr) *udpClient {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &udpClient{conn: conn, to: to}
}

func (c *udpClient) send(t *testing.T, payload string) {
	t.Helper()
	_, err := c.conn.WriteTo([]byte(payload), c.to)
	require.NoError(t, err)
}

// call sends payload and returns the reply; the device may not be
// listening yet when the simulator has just started, so the request is
// repeated (at most every 200 ms, for waitTimeout) until one comes.
func (c *udpClient) call(t *testing.T, payload string) string {
	t.Helper()
	buf := make([]byte, 70000)
	for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); {
		c.send(t, payload)
		require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
		n, from, err := c.conn.ReadFrom(buf)
		if err == nil {
			assert.Equal(t, c.to.String(), from.String())
			return string(buf[:n])
		}
	}
	t.Fatalf("no UDP reply to %s", payload)
	return ""
}

// frameAuth is a frame's auth object for password (section 10), computed
// here from the contract.
func frameAuth(id, password, nonce string, nc int) string {
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h("admin:" + id + ":" + password)
	resp := h(fmt.Sprintf("%s:%s:%d:%s:auth:%s", ha1, nonce, nc, "cn", h("dummy_method:dummy_uri")))
	return fmt.Sprintf(`{"realm":%q,"username":"admin","nonce":%q,"cnonce":"cn","response":%q,"algorithm":"SHA-256","nc":%d}`, id, nonce, resp, nc)
}

func TestUDPProcessPro3EM(t *testing.T) {
	const id = "shellypro3em-0a1b2c3d4e5f"
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-profile", "pro3em-gen2", "-udp", "127.0.0.1:0")
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)
	c := newUDPClient(t, udpAddrOf(t, p))

	// What a Marstek battery sends, and the whole em:0 with the dump's
	// decimal points, dst "unknown".
	got := c.call(t, `{"id":0,"method":"EM.GetStatus","params":{"id":0}}`)
	assert.True(t, strings.HasPrefix(got, `{"id":0,"src":"`+id+`","dst":"unknown","result":{`), got)
	assert.GreaterOrEqual(t, len(got), 250)
	for _, want := range []string{`"a_voltage":227.0`, `"b_act_power":3.6`, `"c_act_power":244.0`, `"b_voltage":230.0`, `"total_act_power":2413.825`} {
		assert.Contains(t, got, want)
	}
	var cfg map[string]any
	conn.CallT(t, "Sys.GetConfig", nil, &cfg)
	assert.Equal(t, float64(c.to.Port), cfg["rpc_udp"].(map[string]any)["listen_port"])

	// Garbage is dropped without reply; the next request is answered.
	for _, junk := range []string{"hello", `{"id":1}`, `[1]`, "{"} {
		c.send(t, junk)
	}
	assert.Contains(t, c.call(t, `{"id":2,"method":"Shelly.GetDeviceInfo"}`), `{"id":2,"src":"`+id+`","dst":"unknown","result":{`)

	// A reply too big for a datagram is -108: a name of 64,000 bytes makes
	// Shelly.GetConfig larger than 65,507.
	conn.CallT(t, "Sys.SetConfig", map[string]any{"config": map[string]any{"device": map[string]any{"name": strings.Repeat("n", 64000)}}}, nil)
	got = c.call(t, `{"id":3,"method":"Shelly.GetConfig"}`)
	assert.True(t, regexp.MustCompile(`^\{"id":3,"src":"`+id+`","dst":"unknown","error":\{"code":-108,"message":"Response of \d+ bytes does not fit in one datagram \(at most 65507\)"\}\}$`).MatchString(got),
		"want -108, got %d bytes: %.200s", len(got), got)

	// A change over UDP reports UDP_in.
	c.call(t, `{"id":4,"method":"EM.SetConfig","params":{"id":0,"config":{"name":"grid"}}}`)
	p.stop(t)
}

func TestUDPProcessAuth(t *testing.T) {
	const id, password = "shellypro3em-0a1b2c3d4e5e", "udp secret"
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-profile", "pro3em-gen2", "-udp", "127.0.0.1:0", "-password-file", pwFile)
	srv.AcceptT(t).ExpectFullStatusT(t)
	c := newUDPClient(t, udpAddrOf(t, p))

	assert.Contains(t, c.call(t, `{"id":1,"method":"Shelly.GetDeviceInfo"}`), `"result":{`, "exempt")
	var challenged struct {
		Error struct {
			Code    int
			Message string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(c.call(t, `{"id":2,"method":"EM.GetStatus","params":{"id":0}}`)), &challenged))
	require.Equal(t, 401, challenged.Error.Code)
	var ch struct{ Nonce string }
	require.NoError(t, json.Unmarshal([]byte(challenged.Error.Message), &ch))
	got := c.call(t, `{"id":3,"method":"EM.GetStatus","params":{"id":0},"auth":`+frameAuth(id, password, ch.Nonce, 1)+`}`)
	assert.Contains(t, got, `"c_act_power":244.0`)
	assert.NotContains(t, p.out.String(), password)
	p.stop(t)
}

func TestMQTTProcess(t *testing.T) {
	const id = "shellyplus1pm-0a1b2c3d4e5d"
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, id+"/#", "tester/rpc")
	srv := shellywstest.NewServer(t)
	pwFile := filepath.Join(t.TempDir(), "mqtt-pass")
	require.NoError(t, os.WriteFile(pwFile, []byte("mqtt hunter2\n"), 0o600))
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-mqtt", b.Addr, "-mqtt-user", "sim", "-mqtt-pass-file", pwFile, "-v")
	conn := srv.AcceptT(t)
	conn.ExpectFullStatusT(t)

	assert.Equal(t, mosquitto.Msg{Topic: id + "/online", Payload: "true", QoS: 1}, sub.Expect(t, id+"/online", waitTimeout))
	ev := sub.Expect(t, id+"/events/rpc", waitTimeout)
	assert.Regexp(t, `^\{"src":"`+id+`","dst":"`+id+`/events","method":"NotifyStatus","params":\{"ts":[0-9.]+,"mqtt":\{"connected":true\}\}\}$`, ev.Payload)
	assert.Equal(t, 1, ev.QoS)
	var st map[string]any
	conn.CallT(t, "Shelly.GetStatus", nil, &st)
	assert.Equal(t, map[string]any{"connected": true}, st["mqtt"])

	b.Publish(t, id+"/rpc", `{"id":"t1","src":"tester","method":"Switch.Set","params":{"id":0,"on":true}}`)
	// The reply and its notification come in either order (Expect would
	// skip one that came first): read both off the one subscription.
	var reply mosquitto.Msg
	seen := ""
	for i := 0; i < 8 && (reply.Topic == "" || !strings.Contains(seen, `"source":"MQTT"`)); i++ {
		switch m := sub.Next(t, waitTimeout); m.Topic {
		case "tester/rpc":
			reply = m
		case id + "/events/rpc":
			if !strings.Contains(seen, `"source":"MQTT"`) {
				seen = m.Payload
			}
		}
	}
	assert.Equal(t, mosquitto.Msg{Topic: "tester/rpc", QoS: 1, Payload: `{"id":"t1","src":"` + id + `","dst":"tester","result":{"was_on":false}}`}, reply)
	assert.Contains(t, seen, `"switch:0":{"id":0,"output":true,"source":"MQTT"}`)

	// SIGTERM: online false, retained.
	p.stop(t)
	assert.Equal(t, "false", sub.Expect(t, id+"/online", waitTimeout).Payload)
	late := b.Subscribe(t, id+"/online")
	assert.Equal(t, mosquitto.Msg{Topic: id + "/online", Payload: "false", QoS: 1, Retained: true}, late.Next(t, waitTimeout))
	assert.NotContains(t, p.out.String(), "hunter2", "the broker password stays out of the output")
}

func TestMQTTProcessWillOnKill(t *testing.T) {
	const id = "shellyplus1pm-0a1b2c3d4e5c"
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, id+"/online")
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-mqtt", b.Addr)
	srv.AcceptT(t).ExpectFullStatusT(t)
	assert.Equal(t, "true", sub.Next(t, waitTimeout).Payload)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	// The broker sees the socket close and publishes the will.
	assert.Equal(t, mosquitto.Msg{Topic: id + "/online", Payload: "false", QoS: 1}, sub.Next(t, waitTimeout))
	late := b.Subscribe(t, id+"/online")
	assert.Equal(t, mosquitto.Msg{Topic: id + "/online", Payload: "false", QoS: 1, Retained: true}, late.Next(t, waitTimeout))
}

func TestMQTTProcessFleet(t *testing.T) {
	const id = "shellyplus1pm-0a1b2c3d4e00"
	b := mosquitto.Start(t)
	sub := b.Subscribe(t, "+/online")
	srv := shellywstest.NewServer(t)
	p := startSimulator(t, "-server", srv.URL(), "-id", id, "-mqtt", b.Addr, "-devices", "3", "-udp", "127.0.0.1:0")
	online := map[string]string{}
	for range 3 {
		m := sub.Next(t, waitTimeout)
		online[m.Topic] = m.Payload
	}
	assert.Equal(t, map[string]string{
		"shellyplus1pm-0a1b2c3d4e00/online": "true",
		"shellyplus1pm-0a1b2c3d4e01/online": "true",
		"shellyplus1pm-0a1b2c3d4e02/online": "true",
	}, online, "each device is a client of its own")
	p.out.waitFor(t, "UDP RPC of shellyplus1pm-0a1b2c3d4e02 on 127.0.0.1:")
	p.stop(t)
}

// The mDNS process test: the simulator runs inside a network namespace the
// test makes (lo up, multicast on) with -http 127.0.0.1:PORT -mdns lo, and
// Debian's python3-zeroconf browses it there (testdata/mdns_browse.py).
func TestMDNSProcessInANetworkNamespace(t *testing.T) {
	if os.Getenv("SHELLYWS_SKIP_NETNS") == "1" {
		t.Skip("SHELLYWS_SKIP_NETNS=1: the python3-zeroconf browse in a network namespace is skipped")
	}
	need := "this test runs as root in a network namespace it creates and browses with Debian's python3-zeroconf: apt-get install -y python3-zeroconf iproute2 util-linux (or set SHELLYWS_SKIP_NETNS=1 to skip it)"
	if os.Geteuid() != 0 {
		t.Fatalf("not root; %s", need)
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s: %v; %s", bin, err, need)
		}
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").CombinedOutput(); err != nil {
		t.Fatalf("python3 cannot import zeroconf: %v %s; %s", err, out, need)
	}
	const port0 = 18080
	ids := []string{"shellypro3em-0a1b2c3d4e10", "shellypro3em-0a1b2c3d4e11"}
	script := "ip link set lo up && ip link set lo multicast on && exec /usr/bin/python3 testdata/mdns_browse.py \"$@\""
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", "sh", "-c", script, "sh", fmt.Sprint(port0),
		simulatorBinary(t), "-server", "ws://127.0.0.1:1/", "-id", ids[0], "-profile", "pro3em-gen2", "-devices", "2",
		"-http", fmt.Sprintf("127.0.0.1:%d", port0), "-mdns", "lo", "-boot-time", "3s")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	var browsed struct {
		Complete bool
		Seconds  float64
		Services []struct {
			Type, Name, Server string
			Resolved           bool
			Port               int
			IPv4               []string
			TXT                map[string]string
		}
	}
	var rebooted struct {
		Asked              any
		Goodbye, Announced bool
	}
	var stopped struct {
		Exit     any
		Goodbyes bool
		Output   string
	}
	for _, line := range strings.Split(string(out), "\n") {
		for prefix, v := range map[string]any{"browsed: ": &browsed, "rebooted: ": &rebooted, "stopped: ": &stopped} {
			if j, ok := strings.CutPrefix(line, prefix); ok {
				require.NoError(t, json.Unmarshal([]byte(j), v), j)
			}
		}
	}
	require.True(t, browsed.Complete, "python-zeroconf did not find both devices under both types:\n%s", out)
	t.Logf("python-zeroconf found the devices in %.2f s", browsed.Seconds)
	require.Len(t, browsed.Services, 4, "%s", out)
	for _, s := range browsed.Services {
		i := strings.Index(s.Name, ".")
		inst := s.Name[:i]
		n := map[string]int{ids[0]: 0, ids[1]: 1}[inst]
		assert.Contains(t, ids, inst)
		assert.True(t, s.Resolved, s.Name)
		assert.Equal(t, port0+n, s.Port, "SRV port: the device's -http port")
		assert.Equal(t, "ShellyPro3EM-"+strings.ToUpper(inst[len(inst)-12:])+".local.", s.Server)
		assert.Equal(t, []string{"127.0.0.1"}, s.IPv4, "A: the -http host")
		if s.Type == "_shelly._tcp.local." {
			assert.Equal(t, map[string]string{"gen": "2", "app": "Pro3EM", "ver": "1.6.1"}, s.TXT)
		} else {
			assert.Equal(t, map[string]string{"gen": "2"}, s.TXT)
		}
	}
	assert.Equal(t, true, rebooted.Asked, "%s", out)
	assert.True(t, rebooted.Goodbye, "no goodbye when the device went down for its reboot:\n%s", out)
	assert.True(t, rebooted.Announced, "no announcement after the boot time:\n%s", out)
	assert.Equal(t, float64(0), stopped.Exit, "%s", stopped.Output)
	assert.True(t, stopped.Goodbyes, "no goodbye for every device on SIGTERM:\n%s", out)
}
