//go:build unix

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestServerBackoffSaidWithoutVerbose: a server that refuses the handshake
// with 429 and Retry-After makes the device wait; the simulator says so,
// with the wait, at its default level (no -v), and without the URL's token.
func TestServerBackoffSaidWithoutVerbose(t *testing.T) {
	addr := serveLoopback(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})

	p := startSimulator(t, "-server", "ws://"+addr+"/shelly?token="+leakToken, "-id", "shellyplus1pm-a1b2c3d4e5f8")
	p.out.waitFor(t, "server asked to back off")
	p.stop(t)
	out := p.out.String()
	line := lineWith(out, "server asked to back off")
	assert.Contains(t, line, "HTTP 429")
	assert.Contains(t, line, "retrying in 2m")
	assertNothingLeaks(t, out, "shellyplus1pm-a1b2c3d4e5f8")
}

// TestFleetServerBackoffNamesDevice: in a fleet the back-off line says which
// device the server refused (Fleet Manager refuses some devices of a fleet
// with 1013 after its restart) and its wait in a readable form.
func TestFleetServerBackoffNamesDevice(t *testing.T) {
	addr := serveLoopback(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})

	p := startSimulator(t, "-server", "ws://"+addr+"/shelly?token="+leakToken,
		"-id", "shellyplus1pm-a1b2c3d4e5f0", "-devices", "2")
	p.out.waitFor(t, "server asked to back off")
	p.stop(t)
	out := p.out.String()
	line := lineWith(out, "server asked to back off")
	assert.Regexp(t, `\(shellyplus1pm-a1b2c3d4e5f[01]\)`, line, "which device")
	assert.Regexp(t, `retrying in [0-9]+m[0-9]+(\.[0-9]{1,3})?s\b`, line, "the wait to the millisecond at most")
	assertNothingLeaks(t, out, "shellyplus1pm-a1b2c3d4e5f0", "shellyplus1pm-a1b2c3d4e5f1")
}

// lineWith is the first line of out that holds sub, "" if none.
func lineWith(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
