//go:build linux

package blackbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The server child: the loopback server (server_test.go) in a process of
// its own, the test binary re-executed, so that a shard's connections count
// against its own open-file limit. It prints "listening ADDR" and then
// answers each line of its stdin with one line on stdout:
//
//	expect N      ok                       (count NotifyFullStatus from N devices, from zero)
//	await         reached UNIXNANO         (when the count was reached)
//	restart DUR   dropped UNIXNANO         (drop all without a close frame, down DUR, listen again; the count starts again)
//	ping DUR      ok                       (ping every connection every DUR, 0: silent)
//	pings         pings SENT ANSWERED MISSED
//	handshakes    handshakes UNIXNANO …    (since the last restart)
//
// and exits when its stdin closes. BB_PING is the ping interval it starts
// with.

func runServerChild() int {
	raiseFileLimit()
	ping, err := time.ParseDuration(os.Getenv("BB_PING"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "server: BB_PING:", err)
		return 2
	}
	s, err := newServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	defer s.close()
	s.setPing(ping)
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
	}
	reply("listening %s", s.addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "expect":
			n, err := strconv.Atoi(arg)
			if err != nil {
				reply("error %v", err)
				continue
			}
			s.expect(n, true)
			reply("ok")
		case "await":
			at, _ := s.awaitReached(nil)
			reply("reached %d", at.UnixNano())
		case "restart":
			d, err := time.ParseDuration(arg)
			if err != nil {
				reply("error %v", err)
				continue
			}
			dropped, err := s.restart(d)
			if err != nil {
				reply("error %v", err)
				continue
			}
			reply("dropped %d", dropped.UnixNano())
		case "ping":
			d, err := time.ParseDuration(arg)
			if err != nil {
				reply("error %v", err)
				continue
			}
			s.setPing(d)
			reply("ok")
		case "pings":
			c := s.pingCounts()
			reply("pings %d %d %d", c.sent, c.answered, c.missed)
		case "handshakes":
			s.mu.Lock()
			ts := s.handshakes
			s.mu.Unlock()
			b := make([]byte, 0, 20*len(ts)+16)
			b = append(b, "handshakes"...)
			for _, t := range ts {
				b = append(b, ' ')
				b = strconv.AppendInt(b, t.UnixNano(), 10)
			}
			reply("%s", b)
		default:
			reply("error unknown command %q", cmd)
		}
	}
	return 0
}

// serverProc is the parent's handle on a server child.
type serverProc struct {
	*child
	addr  string
	lines chan string   // the child's stdout, a line at a time
	quit  chan struct{} // closed by stop: lines no one reads are dropped
}

// startServerProc starts a server child pinging every ping and waits
// until it listens.
func startServerProc(name string, ping time.Duration) (*serverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=server", "BB_PING="+ping.String())
	pr, pw := io.Pipe()
	c, err := startChildOut(name, cmd, pw)
	if err != nil {
		return nil, err
	}
	p := &serverProc{child: c, lines: make(chan string, 4), quit: make(chan struct{})}
	go func() {
		defer close(p.lines)
		in := bufio.NewScanner(pr)
		in.Buffer(nil, 64<<20) // handshakes of a whole shard on one line
		for in.Scan() {
			select {
			case p.lines <- in.Text():
			case <-p.quit:
			}
		}
		_, _ = io.Copy(io.Discard, pr) // a line past the buffer: let the child exit
	}()
	line, err := p.next(30 * time.Second)
	if err != nil {
		p.stop()
		return nil, err
	}
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		p.stop()
		return nil, fmt.Errorf("%s: %q, want listening ADDR", name, line)
	}
	p.addr = addr
	return p, nil
}

// stop ends the child and its reader.
func (p *serverProc) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.child.stop()
	for range p.lines {
	}
}

// URL is the address devices of the shard dial.
func (p *serverProc) URL() string { return "ws://" + p.addr + "/shelly" }

func (p *serverProc) next(limit time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			return "", fmt.Errorf("%s exited; output:\n%s", p.name, p.out)
		}
		return line, nil
	case <-time.After(limit):
		return "", fmt.Errorf("%s: no answer within %v; output:\n%s", p.name, limit, p.out)
	}
}

// call sends cmd and returns the answer's words after the first, which
// must be want.
func (p *serverProc) call(cmd, want string, limit time.Duration) ([]string, error) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.name, cmd, err)
	}
	line, err := p.next(limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != want {
		return nil, fmt.Errorf("%s: %s: answer %.200q, want %s", p.name, cmd, line, want)
	}
	return f[1:], nil
}

// callTime is call for an answer that is one time, in Unix nanoseconds.
func (p *serverProc) callTime(cmd, want string, limit time.Duration) (time.Time, error) {
	f, err := p.call(cmd, want, limit)
	if err != nil {
		return time.Time{}, err
	}
	if len(f) != 1 {
		return time.Time{}, fmt.Errorf("%s: %s: %d words", p.name, cmd, len(f))
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Unix(0, ns), err
}

func (p *serverProc) pingCounts() (pingCounts, error) {
	f, err := p.call("pings", "pings", 30*time.Second)
	if err != nil {
		return pingCounts{}, err
	}
	if len(f) != 3 {
		return pingCounts{}, fmt.Errorf("%s: pings: %d words", p.name, len(f))
	}
	var v [3]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return pingCounts{}, err
		}
	}
	return pingCounts{v[0], v[1], v[2]}, nil
}

func (p *serverProc) handshakes() ([]time.Time, error) {
	f, err := p.call("handshakes", "handshakes", 60*time.Second)
	if err != nil {
		return nil, err
	}
	ts := make([]time.Time, len(f))
	for i, w := range f {
		ns, err := strconv.ParseInt(w, 10, 64)
		if err != nil {
			return nil, err
		}
		ts[i] = time.Unix(0, ns)
	}
	return ts, nil
}

// errAll runs f for each of n in parallel and joins their errors.
func errAll(n int, f func(i int) error) error {
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- f(i) }()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
