// Package mosquitto starts a private Mosquitto broker for tests: on
// 127.0.0.1 and a free port, with its own config file, never the machine's
// 1883. A test that needs it fails, never skips, when Mosquitto is missing.
package mosquitto

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shellyws/shellyws/internal/testkit"
)

// InstallHint is how to get the broker on Debian.
const InstallHint = "apt-get install -y mosquitto mosquitto-clients"

// startTimeout bounds the wait for the broker to listen.
const startTimeout = 10 * time.Second

// Broker is a running mosquitto.
type Broker struct {
	// Addr is where it listens, 127.0.0.1:PORT.
	Addr string

	cmd  *exec.Cmd
	out  *testkit.Buffer
	done chan struct{}
}

// Binary returns the path of mosquitto, or fails t with the install line.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("mosquitto is not installed; the MQTT tests need a real broker: %s", InstallHint)
	return ""
}

// Start runs a broker until the test ends: anonymous clients allowed, no
// persistence, listening on 127.0.0.1 only. Lines of extra are added to
// its listener's config, e.g. "certfile …" and "keyfile …" for TLS.
func Start(t testing.TB, extra ...string) *Broker {
	t.Helper()
	bin := Binary(t)
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\n%sallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n",
		port, strings.Join(append(extra, ""), "\n"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Broker{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out: &testkit.Buffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin, "-c", conf)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(startTimeout):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", b.out.String())
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.Addr, time.Second)
		if err == nil {
			_ = c.Close()
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("mosquitto exited at start: %s", b.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s after %v: %v", b.Addr, startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a port: no event to wait on
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Msg is one message a Sub received.
type Msg struct {
	Topic    string
	Payload  string
	QoS      int
	Retained bool
}

// Sub is a mosquitto_sub client of the broker, subscribed at QoS 2 so that
// each message arrives with the QoS it was published with.
type Sub struct {
	msgs chan Msg
	out  *testkit.Buffer
}

// msgPrefix starts the lines of messages in mosquitto_sub's output, which
// also holds its debug lines.
const msgPrefix = "MSG "

// Subscribe starts mosquitto_sub on topics and returns once the broker
// acknowledged the subscription. It runs until the test ends.
func (b *Broker) Subscribe(t testing.TB, topics ...string) *Sub {
	t.Helper()
	return b.subscribe(t, nil, topics)
}

// SubscribeTLS is Subscribe to a broker whose listener is TLS, verified
// with the CA in the file cafile.
func (b *Broker) SubscribeTLS(t testing.TB, cafile string, topics ...string) *Sub {
	t.Helper()
	return b.subscribe(t, []string{"--cafile", cafile}, topics)
}

func (b *Broker) subscribe(t testing.TB, tlsArgs, topics []string) *Sub {
	t.Helper()
	args := append([]string{"-h", "127.0.0.1", "-p", portOf(b.Addr), "-q", "2", "-d", "-F", msgPrefix + "%r %q %t %p"}, tlsArgs...)
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	// Line-buffered: into a pipe, mosquitto_sub's output would wait in
	// its stdio buffer until it exits.
	cmd := exec.Command(clientBinary(t, "stdbuf"), append([]string{"-oL", clientBinary(t, "mosquitto_sub")}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &Sub{msgs: make(chan Msg, 4096), out: &testkit.Buffer{}}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto_sub: %v", err)
	}
	ready := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.read(stdout, ready)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-read
		_ = cmd.Wait()
	})
	select {
	case <-ready:
	case <-read:
		t.Fatalf("mosquitto_sub ended before subscribing: %s", s.out.String())
	case <-time.After(startTimeout):
		t.Fatalf("mosquitto_sub not subscribed after %v: %s", startTimeout, s.out.String())
	}
	return s
}

func (s *Sub) read(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	subscribed := false
	for sc.Scan() {
		line := sc.Text()
		_, _ = s.out.Write([]byte(line + "\n"))
		if !subscribed && strings.Contains(line, "received SUBACK") {
			subscribed = true
			close(ready)
			continue
		}
		rest, ok := strings.CutPrefix(line, msgPrefix)
		if !ok {
			continue
		}
		f := strings.SplitN(rest, " ", 4)
		if len(f) < 3 {
			continue
		}
		m := Msg{Retained: f[0] == "1", Topic: f[2]}
		m.QoS, _ = strconv.Atoi(f[1])
		if len(f) == 4 {
			m.Payload = f[3]
		}
		select {
		case s.msgs <- m:
		default: // a test that reads nothing: drop rather than block
		}
	}
}

// Next returns the next message, failing t after timeout.
func (s *Sub) Next(t testing.TB, timeout time.Duration) Msg {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no MQTT message within %v; mosquitto_sub said:\n%s", timeout, s.out.String())
		return Msg{}
	}
}

// Expect returns the next message on topic, skipping others; it fails t
// after timeout.
func (s *Sub) Expect(t testing.TB, topic string, timeout time.Duration) Msg {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.msgs:
			if m.Topic == topic {
				return m
			}
		case <-deadline:
			t.Fatalf("no MQTT message on %s within %v; mosquitto_sub said:\n%s", topic, timeout, s.out.String())
			return Msg{}
		}
	}
}

// None fails t if a message arrives within d.
func (s *Sub) None(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected MQTT message %+v", m)
	case <-time.After(d):
	}
}

// Publish publishes payload on topic at QoS 1 with mosquitto_pub.
func (b *Broker) Publish(t testing.TB, topic, payload string) {
	t.Helper()
	cmd := exec.Command(clientBinary(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", portOf(b.Addr), "-q", "1", "-t", topic, "-m", payload)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func clientBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: %s", name, InstallHint)
	}
	return p
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
