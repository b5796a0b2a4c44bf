//go:build linux

package blackbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a device process: the simulator binary or the bare echo device.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *tailBuffer
	done  chan struct{}
	start time.Time
}

// serverAndSimulator starts the loopback server and builds the simulator
// into dir: what every black-box run starts with. The caller closes the
// server.
func serverAndSimulator(dir string) (*server, string, error) {
	srv, err := newServer()
	if err != nil {
		return nil, "", err
	}
	bin, err := buildSimulator(dir)
	if err != nil {
		srv.close()
		return nil, "", err
	}
	return srv, bin, nil
}

// buildSimulator builds cmd/shellyws-sim into dir.
func buildSimulator(dir string) (string, error) {
	bin := filepath.Join(dir, "simulator")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/shellyws-sim")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// startSimulator runs the simulator binary with n devices, ids counted up
// from base, against url; env is added to the environment.
func startSimulator(bin, url, base string, n int, env []string, extra ...string) (*child, error) {
	args := append([]string{"-server", url, "-id", base, "-devices", strconv.Itoa(n)}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startChild(fmt.Sprintf("simulator -devices %d", n), cmd)
}

// startBare runs the bare echo device with n connections to url, srcs
// prefix-0 … prefix-(n-1).
func startBare(url, prefix string, n int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=bare", "BB_URL="+url, "BB_PREFIX="+prefix, "BB_N="+strconv.Itoa(n))
	return startChild(fmt.Sprintf("bare -n %d", n), cmd)
}

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	c := &child{name: name, cmd: cmd, out: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop asks the child to exit (SIGTERM for the simulator, stdin closed for
// the bare device) and kills it after 30 s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// rssKiB is the child's resident set, VmRSS of /proc/<pid>/status.
func rssKiB(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS")
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the child's user + system time so far, from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces; count from its ')'.
	rest := data[bytes.LastIndexByte(data, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// sampleRSS reads the child's RSS count times, every gap, sorted.
func sampleRSS(pid, count int, gap time.Duration) ([]int, error) {
	var rs []int
	for i := range count {
		if i > 0 {
			time.Sleep(gap) // sampling interval of an idle process, by design
		}
		r, err := rssKiB(pid)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs, nil
}

func median[T int | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// tailBuffer keeps the last max bytes written, for diagnostics.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = slices.Clone(b.buf[len(b.buf)-b.max:])
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
