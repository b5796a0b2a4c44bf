package mdns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The network-namespace test: the test binary re-executes itself under
// `unshare -n`, brings lo up with multicast on, starts a Responder with
// Listen("lo") for two devices and lets Debian's python3-zeroconf browse
// them on 127.0.0.1. Nothing leaves the namespace.
const (
	netnsChildEnv = "SHELLYWS_MDNS_NETNS_CHILD"
	netnsSkipEnv  = "SHELLYWS_SKIP_NETNS"
	python        = "/usr/bin/python3" // Debian's, where apt installs python3-zeroconf
	netnsInstall  = "apt-get install -y python3-zeroconf iproute2 util-linux"
)

// netnsServices are the two devices the child announces: a Pro 3EM and a
// Wall Display, whose id is its host name.
var netnsServices = []Service{
	{Instance: "shellypro3em-a0dd6ca0c27c", Port: 8080, Gen: 2, App: "Pro3EM", Ver: "1.7.5"},
	{Instance: "ShellyWallDisplay-00082261E102", Port: 8081, Gen: 2, App: "WallDisplay", Ver: "2.6.2"},
}

// netnsFleetSize more devices make the answers span several 8,966-byte
// messages, python-zeroconf's largest.
const netnsFleetSize = 300

func netnsFleet() []Service {
	out := fleet(netnsFleetSize)
	for i := range out {
		out[i].Addrs = nil // the interface's: 127.0.0.1
	}
	return out
}

type browsed struct {
	Complete bool    `json:"complete"`
	Seconds  float64 `json:"seconds"`
	Services []struct {
		Type     string            `json:"type"`
		Name     string            `json:"name"`
		Resolved bool              `json:"resolved"`
		Port     int               `json:"port"`
		Server   string            `json:"server"`
		IPv4     []string          `json:"ipv4"`
		TXT      map[string]string `json:"txt"`
	} `json:"services"`
}

type removedLine struct {
	Complete bool                `json:"removed_complete"`
	Removed  map[string][]string `json:"removed"`
}

func TestZeroconfBrowsesTheResponderInANetworkNamespace(t *testing.T) {
	if os.Getenv(netnsSkipEnv) == "1" {
		t.Skip(netnsSkipEnv + "=1: the python3-zeroconf browse in a network namespace is skipped")
	}
	need := fmt.Sprintf("this test runs as root in a network namespace it creates and browses with Debian's python3-zeroconf: %s (or set %s=1 to skip it)", netnsInstall, netnsSkipEnv)
	if os.Geteuid() != 0 {
		t.Fatalf("not root; %s", need)
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s: %v; %s", bin, err, need)
		}
	}
	if out, err := exec.Command(python, "-c", "import zeroconf").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import zeroconf: %v %s; %s", python, err, out, need)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var b browsed
	var rm removedLine
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, "browsed: "); ok {
			require.NoError(t, json.Unmarshal([]byte(j), &b), j)
		}
		if j, ok := strings.CutPrefix(line, "removed: "); ok {
			require.NoError(t, json.Unmarshal([]byte(j), &rm), j)
		}
	}
	require.True(t, b.Complete, "python-zeroconf did not find every device under both types:\n%s", out)
	t.Logf("python-zeroconf found %d devices in %.2f s", len(netnsServices)+netnsFleetSize, b.Seconds)
	require.Len(t, b.Services, 2*(len(netnsServices)+netnsFleetSize))
	for _, s := range b.Services {
		require.True(t, s.Resolved, s.Name)
		require.Equal(t, []string{"127.0.0.1"}, s.IPv4, s.Name)
	}

	// What python-zeroconf resolved: names, TXT, port, 127.0.0.1.
	type key struct{ typ, name string }
	got := map[key]int{}
	for i, s := range b.Services {
		got[key{s.Type, s.Name}] = i
	}
	for _, svc := range netnsServices {
		host := HostName(svc.Instance) + ".local."
		for _, typ := range []string{"_shelly._tcp.local.", "_http._tcp.local."} {
			i, ok := got[key{typ, svc.Instance + "." + typ}]
			require.True(t, ok, "%s not found under %s:\n%s", svc.Instance, typ, out)
			s := b.Services[i]
			require.True(t, s.Resolved, s.Name)
			require.Equal(t, svc.Port, s.Port, s.Name)
			require.Equal(t, host, s.Server, s.Name)
			require.Equal(t, []string{"127.0.0.1"}, s.IPv4, s.Name)
			want := map[string]string{"gen": "2", "app": svc.App, "ver": svc.Ver}
			if typ == "_http._tcp.local." {
				want = map[string]string{"gen": "2"}
			}
			require.Equal(t, want, s.TXT, s.Name)
		}
	}

	// aioshelly (aioshelly/zeroconf.py, async_discover_devices): every
	// _shelly entry, an _http entry only when its name starts with
	// "Shelly-", and an address and a port. Home Assistant's manifest
	// matches _http names "shelly*" (case-insensitive) and all of _shelly;
	// it takes the MAC from the instance name. openHAB browses _http and
	// wants ^([a-z0-9]*shelly[a-z0-9]*)-([a-z0-9]+)$ and gen 2, 3 or 4.
	openhab := regexp.MustCompile(`(?i)^([a-z0-9]*shelly[a-z0-9]*)-([a-z0-9]+)$`)
	aioshelly := map[string]bool{}
	for _, s := range b.Services {
		if strings.HasPrefix(s.Name, "shellyplus1pm-") {
			continue // the fleet
		}
		inst := strings.TrimSuffix(s.Name, "."+s.Type)
		if (s.Type == "_shelly._tcp.local." || strings.HasPrefix(s.Name, "Shelly-")) && len(s.IPv4) > 0 && s.Port > 0 {
			aioshelly[inst] = true
		}
		require.True(t, strings.HasPrefix(strings.ToLower(inst), "shelly"), "Home Assistant's shelly* for %s", s.Name)
		_, mac, _ := strings.Cut(inst, "-")
		require.Regexp(t, `^[0-9A-Fa-f]{12}$`, mac, "Home Assistant's MAC from %s", s.Name)
		if s.Type == "_http._tcp.local." {
			require.Regexp(t, openhab, inst, "openHAB's name rule")
			require.Contains(t, []string{"2", "3", "4"}, s.TXT["gen"], "openHAB's gen")
		}
	}
	require.Equal(t, map[string]bool{netnsServices[0].Instance: true, netnsServices[1].Instance: true}, aioshelly,
		"aioshelly keeps both devices (from _shelly)")

	// Remove's goodbye reached python-zeroconf for both types.
	require.True(t, rm.Complete, "no goodbye seen:\n%s", out)
}

// netnsChild runs inside the namespace: lo up with multicast, a Responder
// on it, python-zeroconf browsing. It prints python's JSON lines prefixed
// with "browsed: " and "removed: ".
func netnsChild() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "netns child: "+format+"\n", args...)
		return 1
	}
	// Listen says what is wrong with the interface, naming it.
	for _, step := range []struct {
		want string
		ip   []string
	}{
		{"mdns: interface lo is down", []string{"link", "set", "lo", "up"}},
		{"mdns: interface lo has multicast off", []string{"link", "set", "lo", "multicast", "on"}},
	} {
		if r, err := Listen("lo"); err == nil || !strings.Contains(err.Error(), step.want) {
			if r != nil {
				r.Close()
			}
			return fail("Listen: %v, want %q", err, step.want)
		}
		if out, err := exec.Command("ip", step.ip...).CombinedOutput(); err != nil {
			return fail("ip %s: %v %s", strings.Join(step.ip, " "), err, out)
		}
	}
	r, err := Listen("lo")
	if err != nil {
		return fail("%v", err)
	}
	defer r.Close()
	if err := r.Add(netnsServices...); err != nil {
		return fail("%v", err)
	}
	if err := r.Add(netnsFleet()...); err != nil {
		return fail("%v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/browse.py", fmt.Sprint(len(netnsServices)+netnsFleetSize))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail("%v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail("%v", err)
	}
	if err := cmd.Start(); err != nil {
		return fail("%v", err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	if !lines.Scan() {
		cmd.Wait()
		return fail("python printed nothing: %v", lines.Err())
	}
	fmt.Println("browsed: " + lines.Text())
	if err := r.Remove(netnsServices[0].Instance); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdin, netnsServices[0].Instance)
	if lines.Scan() {
		fmt.Println("removed: " + lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		return fail("python: %v", err)
	}
	return 0
}
