//go:build linux

package blackbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shellyws/shellyws/bench/internal/procfs"
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

func startChild(name string, cmd *exec.Cmd) (*child, error) { return startChildOut(name, cmd, nil) }

// startChildOut is startChild with the child's stdout going to stdout
// instead (closed when the child has exited), stderr still kept.
func startChildOut(name string, cmd *exec.Cmd, stdout io.WriteCloser) (*child, error) {
	c := &child{name: name, cmd: cmd, out: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if stdout != nil {
		cmd.Stdout = stdout
	}
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
		if stdout != nil {
			_ = stdout.Close()
		}
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

// sampleRSS reads the child's RSS count times, every gap, sorted.
func sampleRSS(pid, count int, gap time.Duration) ([]int, error) {
	var rs []int
	for i := range count {
		if i > 0 {
			time.Sleep(gap) // sampling interval of an idle process, by design
		}
		r, err := procfs.RSSKiB(pid)
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

// idle is what an idle window measured of a set of processes.
type idle struct {
	length time.Duration
	cpu    float64 // % of one core, the processes together
	rss    []int   // KiB, the processes together, in time order: the first at the window's start, the last at its end
	pings  pingCounts
}

// measureIdle samples the processes' RSS samples times (at least twice:
// at the start and the end) over length, their CPU time over the same
// span, and what counts says the servers pinged in it.
func measureIdle(pids []int, length time.Duration, samples int, counts func() (pingCounts, error)) (idle, error) {
	var w idle
	samples = max(samples, 2)
	cpu := func() (time.Duration, error) { return sumCPU(pids) }
	rss := func() error {
		sum, err := sumRSS(pids)
		w.rss = append(w.rss, sum)
		return err
	}
	p0, err := counts()
	if err != nil {
		return w, err
	}
	c0, err := cpu()
	if err != nil {
		return w, err
	}
	t0 := time.Now()
	for i := range samples {
		if i > 0 {
			// The sampling interval of idle processes, by design.
			time.Sleep(time.Until(t0.Add(length * time.Duration(i) / time.Duration(samples-1))))
		}
		if err := rss(); err != nil {
			return w, err
		}
	}
	c1, err := cpu()
	if err != nil {
		return w, err
	}
	w.length = time.Since(t0)
	w.cpu = 100 * float64(c1-c0) / float64(w.length)
	p1, err := counts()
	if err != nil {
		return w, err
	}
	w.pings = p1.minus(p0)
	return w, nil
}

// sumCPU is the user + system time of the processes together.
func sumCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := procfs.CPUTime(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// sumRSS is the resident set of the processes together, in KiB.
func sumRSS(pids []int) (int, error) {
	sum := 0
	for _, pid := range pids {
		r, err := procfs.RSSKiB(pid)
		if err != nil {
			return 0, err
		}
		sum += r
	}
	return sum, nil
}

// machine states the limits a run is bound by, for its report.
func machine() string {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			return "?"
		}
		return strings.Join(strings.Fields(string(data)), " ")
	}
	load := strings.Fields(read("/proc/loadavg"))
	load = load[:min(3, len(load))]
	memTotal, memAvail := meminfo("MemTotal:"), meminfo("MemAvailable:")
	return fmt.Sprintf("machine: %d cores, ulimit -n %d (hard %d), load %s, memory %.1f GiB available of %.1f, ephemeral ports %s, somaxconn %s",
		runtime.NumCPU(), lim.Cur, lim.Max, strings.Join(load, " "), float64(memAvail)/(1<<20), float64(memTotal)/(1<<20),
		strings.ReplaceAll(read("/proc/sys/net/ipv4/ip_local_port_range"), " ", "–"), read("/proc/sys/net/core/somaxconn"))
}

// meminfo is a field of /proc/meminfo in KiB, 0 if unknown.
func meminfo(field string) int {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// fileLimit is the hard limit on open files, which children inherit: a Go
// program raises its soft limit to it at start.
func fileLimit() int {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return int(lim.Max)
}
