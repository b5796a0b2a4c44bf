package evws

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// HandshakeError is a handshake the server refused with an HTTP status
// other than 101 (a redirect included: it is not followed).
type HandshakeError struct {
	StatusCode int
	Header     http.Header // Retry-After and the like
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("evws: handshake refused with HTTP %d", e.StatusCode)
}

// ErrBadHandshake is a 101 answer that is not a valid websocket upgrade.
var ErrBadHandshake = errors.New("evws: bad handshake response")

var defaultDialer = &net.Dialer{KeepAlive: 30 * time.Second}

// Dial opens a websocket to a ws:// or wss:// URL, sending its path and
// query verbatim, the subprotocol and no Origin or auth header; tc is the
// TLS configuration for wss:// (nil: the system roots; its ServerName
// defaults to the host). ctx bounds the whole of it. The connection does
// not read until Start.
func Dial(ctx context.Context, rawURL string, tc *tls.Config, o *Options) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("evws: invalid URL")
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("evws: scheme %q is neither ws nor wss", u.Scheme)
	}
	dial := o.NetDial
	if dial == nil {
		dial = defaultDialer.DialContext
	}
	nc, err := dial(ctx, "tcp", hostPort(u))
	if err != nil {
		return nil, err
	}
	c, err := handshake(ctx, nc, u, tc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// hostPort is the address to dial for u, with the scheme's default port.
func hostPort(u *url.URL) string {
	if port := u.Port(); port != "" {
		return net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "wss" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func handshake(ctx context.Context, nc net.Conn, u *url.URL, tc *tls.Config, o *Options) (*Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	c := &Conn{o: o, nc: nc}
	err := c.upgrade(ctx, u, tc)
	if !stop() || ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if fd, ok := pollable(rc); ok {
				c.rc, c.fd = rc, fd
				if !o.Goroutine {
					c.p = o.Poller
					if c.p == nil {
						c.p = defaultPoller()
					}
				}
				if c.tio != nil {
					c.tio.polled = c.p != nil
				}
			}
		}
	}
	return c, nil
}

// upgrade makes the TLS and websocket handshakes on c.nc.
func (c *Conn) upgrade(ctx context.Context, u *url.URL, cfg *tls.Config) error {
	var rw io.ReadWriter = c.nc
	if u.Scheme == "wss" {
		if cfg == nil || cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			if cfg == nil {
				cfg = &tls.Config{}
			} else {
				cfg = cfg.Clone()
			}
			cfg.ServerName = u.Hostname()
		}
		c.tio = &tlsIO{Conn: c.nc, c: c}
		c.tc = tls.Client(c.tio, cfg)
		if err := c.tc.HandshakeContext(ctx); err != nil {
			return err
		}
		rw = c.tc
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(u.RequestURI())
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(u.Host)
	b.WriteString("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
	b.WriteString(key)
	b.WriteString("\r\nSec-WebSocket-Version: 13\r\n")
	if c.o.Subprotocol != "" {
		b.WriteString("Sec-WebSocket-Protocol: ")
		b.WriteString(c.o.Subprotocol)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(rw, b.String()); err != nil {
		return err
	}
	br := bufio.NewReader(rw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	resp.Body.Close() // a refusal's body is not read; the socket is closed
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
	}
	sum := sha1.Sum([]byte(key + websocketGUID))
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return fmt.Errorf("%w: Upgrade %q", ErrBadHandshake, resp.Header.Get("Upgrade"))
	case !headerHasToken(resp.Header, "Connection", "upgrade"):
		return fmt.Errorf("%w: Connection %q", ErrBadHandshake, resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrBadHandshake)
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return fmt.Errorf("%w: extensions %q were not offered", ErrBadHandshake, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		if !strings.EqualFold(p, c.o.Subprotocol) {
			return fmt.Errorf("%w: subprotocol %q was not offered", ErrBadHandshake, p)
		}
		c.subprotocol = c.o.Subprotocol
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		c.pending = getBuf()
		*c.pending = append(*c.pending, rest...)
	}
	return nil
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
