//go:build linux

package blackbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/coder/websocket"
)

// The bare echo device: the least a device must do on coder/websocket. It
// dials BB_N connections to BB_URL, sends on each a NotifyFullStatus with
// src BB_PREFIX-<i>, then echoes every frame it reads back from one
// goroutine per connection reusing one buffer; that reader answers the
// server's pings. It sends no pings and does not reconnect. It runs until
// its stdin closes.

func runBare() int {
	raiseFileLimit()
	url, prefix := os.Getenv("BB_URL"), os.Getenv("BB_PREFIX")
	n, err := strconv.Atoi(os.Getenv("BB_N"))
	if err != nil || url == "" || prefix == "" {
		fmt.Fprintln(os.Stderr, "bare: need BB_URL, BB_N, BB_PREFIX")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256) // dials in flight
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"json-rpc"}})
			<-sem
			if err != nil {
				fmt.Fprintln(os.Stderr, "bare: dial:", err)
				return
			}
			src := fmt.Sprintf("%s-%d", prefix, i)
			full := fmt.Sprintf(`{"src":%q,"dst":"ws","method":"NotifyFullStatus","params":{"ts":1,"ws":{"connected":true}}}`, src)
			if err := c.Write(ctx, websocket.MessageText, []byte(full)); err != nil {
				fmt.Fprintln(os.Stderr, "bare: write:", err)
				c.CloseNow()
				return
			}
			echo(ctx, c)
		})
	}
	<-ctx.Done()
	wg.Wait()
	return 0
}

// echo writes back every frame c reads, until either fails.
func echo(ctx context.Context, c *websocket.Conn) {
	defer c.CloseNow()
	var buf []byte
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			m, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		if err := c.Write(ctx, typ, buf); err != nil {
			return
		}
	}
}

// raiseFileLimit lifts the soft limit on open files to the hard limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
