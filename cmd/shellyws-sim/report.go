package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
)

// printer serialises lines from the device's goroutines, the test server's
// transcript hook and the main goroutine onto one writer.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// retryReporter wraps the component's backoff policy to report each delay
// it hands out: the library asks for one per failed attempt, right after
// the connection or dial failed, so the cause is the component's LastError
// at that moment.
type retryReporter struct {
	policy func(attempt int) time.Duration // e.g. shellyws.DefaultBackoff
	comp   *shellyws.Component             // set before Run
	report func(attempt int, delay time.Duration, lost bool, cause error)

	disconnects, dialFailures uint64
}

// delay is the device's policy (shellyws.WithBackoff). attempt counts from
// the library's last reset, after a healthy connection or a restart.
func (r *retryReporter) delay(attempt int) time.Duration {
	d := r.policy(attempt)
	st := r.comp.Stats()
	lost := st.Disconnects > r.disconnects
	r.disconnects, r.dialFailures = st.Disconnects, st.DialFailures
	r.report(attempt, d, lost, r.comp.LastError())
	return d
}

// describe says in a few words why a connection failed, for a human: the
// full error of a dial is a chain of five wrappers.
func describe(err error) string {
	if err == nil {
		return "no error"
	}
	if code := websocket.CloseStatus(err); code != -1 {
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Reason != "" {
			return fmt.Sprintf("the server closed it (%d %s)", int(code), ce.Reason)
		}
		return fmt.Sprintf("the server closed it (%d)", int(code))
	}
	var ce *shellyws.ConnError
	if errors.As(err, &ce) && ce.HTTPStatus != 0 {
		return fmt.Sprintf("handshake refused with HTTP %d", ce.HTTPStatus)
	}
	var errno syscall.Errno
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, shellyws.ErrNoUserCA):
		return "no usable user CA (ssl_ca is user_ca.pem)"
	case errors.As(err, &unknownCA):
		return "TLS: certificate signed by an unknown authority (see -ssl-ca)"
	case errors.As(err, &hostErr):
		return "TLS: " + hostErr.Error()
	case errors.As(err, &verifyErr):
		return "TLS: " + verifyErr.Err.Error()
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server dropped the connection (EOF)"
	}
	// A redacted error keeps only its text; its last part names the cause.
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return msg
}

// roundDelay shows a backoff delay at a readable precision.
func roundDelay(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}
