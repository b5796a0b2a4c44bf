//go:build linux

// Command idlefleet measures what an idle websocket client costs per
// connection: RSS and CPU of a process holding N idle connections to a
// loopback server in another process, for coder/websocket (one reader
// goroutine per connection, as the bare device of the black-box
// benchmark) and for internal/evws (a poller).
//
//	go run ./bench/cmd/idlefleet -n 10000 -impls coder,evws -rounds 3 -ping 2s -idle 10s
//
// Each round runs every implementation in turn, each with a fresh server
// and client process: RSS per connection is (RSS(N) − RSS(1)) / (N − 1),
// RSS sampled -samples times over the idle window after -settle; CPU is
// the client's user + system time over the idle window. The figures
// printed are per round, then the median over rounds.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws/bench/internal/procfs"
	"github.com/shellyws/shellyws/internal/evws"
)

func main() {
	role := flag.String("role", "driver", "driver, server or client")
	n := flag.Int("n", 10000, "connections")
	impls := flag.String("impls", "coder,evws", "implementations, comma-separated: coder, evws, evws-goroutine; a suffix :DURATION sets that one's keepalive")
	rounds := flag.Int("rounds", 3, "rounds")
	ping := flag.Duration("ping", 0, "the server pings every connection this often (0: a silent server)")
	keepalive := flag.Duration("keepalive", 0, "evws keepalive interval (0: none; coder never pings)")
	idle := flag.Duration("idle", 10*time.Second, "idle window")
	settle := flag.Duration("settle", 2*time.Second, "wait after connecting, before the window")
	samples := flag.Int("samples", 5, "RSS samples over the window")
	park := flag.Bool("park", false, "the goroutine that dialled each connection parks for its life (as Component.Run does)")
	useTLS := flag.Bool("tls", false, "wss:// with a self-signed certificate (the client does not verify it)")
	impl := flag.String("impl", "", "client: implementation")
	url := flag.String("url", "", "client: server URL")
	flag.Parse()
	raiseFileLimit()
	switch *role {
	case "server":
		os.Exit(serve(*ping, *useTLS))
	case "client":
		os.Exit(client(*impl, *url, *n, *keepalive, *park))
	}
	tlsFlag = *useTLS
	os.Exit(drive(strings.Split(*impls, ","), *n, *rounds, *ping, *keepalive, *idle, *settle, *samples, *park))
}

// raiseFileLimit lifts the soft limit on open files to the hard limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// serve accepts websockets until stdin closes, reading each (so pings are
// answered and closes seen) and pinging it every ping from a random phase.
func serve(ping time.Duration, useTLS bool) int {
	ln, err := netListen(useTLS)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	scheme := "ws://"
	if useTLS {
		scheme = "wss://"
	}
	fmt.Println(scheme + ln.Addr().String() + "/shelly")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
		ln.Close()
	}()
	var pings atomic.Int64
	defer func() { fmt.Fprintf(os.Stderr, "server: %d pings received from clients\n", pings.Load()) }()
	onPing := func(context.Context, []byte) bool { pings.Add(1); return true }
	return httpServe(ctx, ln, onPing, func(c *websocket.Conn) {
		c.SetReadLimit(1 << 20)
		if ping > 0 {
			go func() {
				// A fixed period from a random phase, as a server's
				// interval timer pings.
				select {
				case <-ctx.Done():
					return
				case <-time.After(rand.N(ping)):
				}
				t := time.NewTicker(ping)
				defer t.Stop()
				for {
					pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
					err := c.Ping(pctx)
					pcancel()
					if err != nil {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
				}
			}()
		}
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	})
}

// client holds n connections to url until stdin closes; it prints "ready"
// once all are up.
func client(impl, url string, n int, keepalive time.Duration, park bool) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	var mu sync.Mutex
	var failed error
	stop := make(chan struct{})
	insecure := &tls.Config{InsecureSkipVerify: true}
	o := &evws.Options{Subprotocol: "json-rpc", Goroutine: impl == "evws-goroutine",
		PingInterval: keepalive, PingTimeout: 10 * time.Second}
	dopts := &websocket.DialOptions{Subprotocols: []string{"json-rpc"},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: insecure}}}
	h := &echo{}
	var ready sync.WaitGroup // connections up (their goroutines may park)
	for i := range n {
		sem <- struct{}{}
		ready.Add(1)
		wg.Go(func() {
			released := false
			defer func() {
				if !released {
					<-sem
					ready.Done()
				}
			}()
			full := fmt.Appendf(nil, `{"src":"dev-%d","dst":"ws","method":"NotifyFullStatus","params":{"ts":1,"ws":{"connected":true}}}`, i)
			var err error
			switch impl {
			case "coder":
				var c *websocket.Conn
				c, _, err = websocket.Dial(ctx, url, dopts)
				if err == nil {
					if err = c.Write(ctx, websocket.MessageText, full); err == nil {
						go coderEcho(ctx, c)
						if keepalive > 0 {
							coderKeepalive(ctx, c, keepalive)
						}
					}
				}
			case "evws", "evws-goroutine":
				var c *evws.Conn
				c, err = evws.Dial(ctx, url, insecure, o)
				if err == nil {
					if err = c.Write(full); err == nil {
						c.Start(h)
					}
				}
			default:
				err = fmt.Errorf("unknown implementation %q", impl)
			}
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			if park && err == nil {
				// The goroutine that dialled parks until the end, as
				// Component.Run does for the life of its connection.
				released = true
				<-sem
				ready.Done()
				<-stop
			}
		})
	}
	ready.Wait()
	if failed != nil {
		fmt.Fprintln(os.Stderr, "client:", failed)
		return 1
	}
	fmt.Println("ready")
	if os.Getenv("IDLEFLEET_STATS") != "" {
		go func() {
			time.Sleep(3 * time.Second)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(os.Stderr, "client %s n=%d: goroutines %d, heap in use %d KiB, heap objects %d, stacks %d KiB, runtime other %d KiB, sys %d KiB, released %d KiB\n",
				impl, n, runtime.NumGoroutine(), ms.HeapInuse>>10, ms.HeapObjects, ms.StackInuse>>10,
				(ms.MSpanInuse+ms.MCacheInuse+ms.BuckHashSys+ms.GCSys+ms.OtherSys)>>10, ms.Sys>>10, ms.HeapReleased>>10)
			if f := os.Getenv("IDLEFLEET_HEAPPROFILE"); f != "" && n > 1 {
				runtime.GC()
				out, err := os.Create(f + "." + impl)
				if err == nil {
					pprof.WriteHeapProfile(out)
					out.Close()
				}
			}
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	close(stop)
	wg.Wait()
	return 0
}

// coderEcho is the bare device's loop: echo every message.
func coderEcho(ctx context.Context, c *websocket.Conn) {
	defer c.CloseNow()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// coderKeepalive pings c every interval from a timer, as the library's
// peer did before the keepalive revision.
func coderKeepalive(ctx context.Context, c *websocket.Conn, iv time.Duration) {
	var t *time.Timer
	t = time.AfterFunc(iv, func() {
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Ping(pctx)
		cancel()
		if err == nil && ctx.Err() == nil {
			t.Reset(iv)
		}
	})
}

// echo writes every message back, from a goroutine: never on the poller.
type echo struct{}

func (echo) Message(c *evws.Conn, text bool, data []byte) {
	b := slices.Clone(data)
	go c.Write(b)
}

func (echo) Closed(*evws.Conn, error) {}

// proc is a child process of the driver.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func start(args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}, nil
}

func (p *proc) line() (string, error) {
	s, err := p.out.ReadString('\n')
	return strings.TrimSpace(s), err
}

func (p *proc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// rssKiB is VmRSS of pid, 0 when it cannot be read.
func rssKiB(pid int) float64 {
	r, _ := procfs.RSSKiB(pid)
	return float64(r)
}

// cpuTime is user + system time of pid, 0 when it cannot be read.
func cpuTime(pid int) time.Duration {
	d, _ := procfs.CPUTime(pid)
	return d
}

type result struct {
	rss1, rssN  float64 // KiB: median of samples
	perConnKiB  float64
	cpuPct      float64 // of one core, over the window
	perKPct     float64 // per 1,000 connections
	connectTime time.Duration
}

// measure runs one server and one client of impl with n connections.
func measure(impl string, n int, ping, keepalive, idle, settle time.Duration, samples int, park bool) (rss []float64, cpu float64, took time.Duration, err error) {
	srv, err := start("-role", "server", "-ping", ping.String(), fmt.Sprintf("-tls=%v", tlsFlag))
	if err != nil {
		return nil, 0, 0, err
	}
	defer srv.stop()
	url, err := srv.line()
	if err != nil {
		return nil, 0, 0, err
	}
	t0 := time.Now()
	cl, err := start("-role", "client", "-impl", impl, "-url", url, "-n", strconv.Itoa(n),
		"-keepalive", keepalive.String(), fmt.Sprintf("-park=%v", park))
	if err != nil {
		return nil, 0, 0, err
	}
	defer cl.stop()
	if l, err := cl.line(); err != nil || l != "ready" {
		return nil, 0, 0, fmt.Errorf("client of %s: %q %v", impl, l, err)
	}
	took = time.Since(t0)
	time.Sleep(settle)
	pid := cl.cmd.Process.Pid
	c0, w0 := cpuTime(pid), time.Now()
	for range samples {
		time.Sleep(idle / time.Duration(samples))
		rss = append(rss, rssKiB(pid))
	}
	cpu = (cpuTime(pid) - c0).Seconds() / time.Since(w0).Seconds() * 100
	return rss, cpu, took, nil
}

// tlsFlag is the driver's -tls, handed to its servers.
var tlsFlag bool

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func drive(impls []string, n, rounds int, ping, keepalive, idle, settle time.Duration, samples int, park bool) int {
	fmt.Printf("idlefleet: n=%d ping=%v keepalive=%v idle=%v settle=%v samples=%d park=%v tls=%v GOGC=%q\n",
		n, ping, keepalive, idle, settle, samples, park, tlsFlag, os.Getenv("GOGC"))
	per := map[string][]result{}
	for r := range rounds {
		for _, name := range impls {
			impl, ka := name, keepalive
			if i, d, ok := strings.Cut(name, ":"); ok {
				var err error
				if ka, err = time.ParseDuration(d); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
				impl = i
			}
			one, _, _, err := measure(impl, 1, 0, ka, 2*time.Second, time.Second, 3, park)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			rss, cpu, took, err := measure(impl, n, ping, ka, idle, settle, samples, park)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			res := result{rss1: median(one), rssN: slices.Max(rss), cpuPct: cpu, connectTime: took}
			res.perConnKiB = (res.rssN - res.rss1) / float64(n-1)
			res.perKPct = cpu / float64(n) * 1000
			per[name] = append(per[name], res)
			fmt.Printf("round %d %-15s RSS(1) %6.0f KiB  RSS(N) max %8.0f KiB (samples %v)  per conn %5.2f KiB  idle CPU %6.3f %% (%.4f %% per 1,000)  connected in %v\n",
				r+1, name, res.rss1, res.rssN, rss, res.perConnKiB, res.cpuPct, res.perKPct, took.Round(time.Millisecond))
		}
	}
	fmt.Println("medians over rounds:")
	for _, impl := range impls {
		var kib, cpu []float64
		for _, r := range per[impl] {
			kib = append(kib, r.perConnKiB)
			cpu = append(cpu, r.perKPct)
		}
		fmt.Printf("  %-15s per conn %5.2f KiB (%v)  idle CPU per 1,000 conns %.4f %% of a core (%v)\n",
			impl, median(kib), fmtAll(kib, "%.2f"), median(cpu), fmtAll(cpu, "%.4f"))
	}
	return 0
}

func fmtAll(v []float64, f string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(s, " ")
}
