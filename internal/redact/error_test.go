package redact

import (
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// ErrorFor masks the secrets of the URL wherever the text holds them, raw
// or unescaped, and keeps the chain's clean cause reachable.
func TestErrorFor(t *testing.T) {
	raw := "wss://" + user + ":" + password + "@h:8443/s?remote_key=" + url.QueryEscape(token+" x")
	cause := syscall.ECONNREFUSED
	for name, err := range map[string]error{
		"in a URL":   fmt.Errorf("dial %q: %w", raw, cause),
		"unescaped":  fmt.Errorf("handshake for key %s failed: %w", token+" x", cause),
		"user alone": fmt.Errorf("user %s refused: %w", user, cause),
		"wrapped":    fmt.Errorf("outer: %w", fmt.Errorf("inner %s: %w", password, cause)),
	} {
		got := ErrorFor(err, raw)
		assertClean(t, got.Error())
		assert.ErrorIs(t, got, cause, name)
		assert.Equal(t, got.Error(), ErrorFor(got, raw).Error(), "%s: idempotent", name)
	}
	clean := fmt.Errorf("dial tcp 127.0.0.1:1: %w", cause)
	assert.Same(t, clean, ErrorFor(clean, raw), "a clean error is returned as it is")
	assert.NoError(t, ErrorFor(nil, raw))
	// By rule too: an ha1 in the text goes whatever the URL.
	assertClean(t, ErrorFor(errors.New("bad "+ha1), "ws://h/").Error())
}
