package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, testCAPEM(t), 0o600))
	notPEM := filepath.Join(t.TempDir(), "x.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	s, err := parseFlags(nil)
	require.NoError(t, err)
	assert.True(t, s.demo())
	assert.Equal(t, 1, s.devices)

	s, err = parseFlags([]string{"-id", "shellyplus1pm-aabbccddeeff", "-v"})
	require.NoError(t, err)
	assert.True(t, s.demo(), "-id and -v keep the demo")

	s, err = parseFlags([]string{"-server", "wss://fm.example/shelly?token=x", "-ssl-ca", ""})
	require.NoError(t, err)
	assert.False(t, s.demo())
	assert.Nil(t, s.sslCA, "'' is null")
	assert.True(t, s.sslCASet)

	s, err = parseFlags([]string{"-server", "wss://h/", "-ssl-ca", "user_ca.pem", "-user-ca", caFile, "-devices", "10"})
	require.NoError(t, err)
	assert.Equal(t, "user_ca.pem", *s.sslCA)
	assert.Equal(t, 10, s.devices)

	s, err = parseFlags([]string{"-state", t.TempDir()})
	require.NoError(t, err)
	assert.False(t, s.demo())

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-ssl-ca", "bogus"}, `-ssl-ca "bogus"`},
		{[]string{"-server", "http://x"}, "must start with ws:// or wss://"},
		{[]string{"-server", "ws://"}, "has no host"},
		{[]string{"-server", "ws://h", "-devices", "0"}, "-devices 0"},
		{[]string{"-server", "ws://h", "-devices", "x"}, "invalid value"},
		{[]string{"-devices", "3"}, "-devices needs -server or -state"},
		{[]string{"-ssl-ca", "*"}, "-ssl-ca needs -server or -state"},
		{[]string{"-id", "nope"}, "-id"},
		{[]string{"-id", "shellyplus1pm-AABBCCDDEEFF"}, "lowercase"},
		{[]string{"-server", "ws://h", "-ssl-ca", "user_ca.pem"}, "needs -user-ca"},
		{[]string{"-server", "ws://h", "-user-ca", filepath.Join(t.TempDir(), "missing.pem")}, "-user-ca"},
		{[]string{"-server", "ws://h", "-user-ca", notPEM}, "no PEM certificate"},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseFlags(tc.args)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.msg, "%v", tc.args)

		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(tc.args, &stdout, &stderr), "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.msg)
		assert.Empty(t, stdout.String())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	for _, flag := range []string{"-server URL", "-id ID", "-ssl-ca VALUE", "-user-ca FILE", "-state DIR", "-devices N", "-v "} {
		assert.Contains(t, stdout.String(), flag)
	}
	assert.True(t, strings.HasPrefix(stdout.String(), "Usage: simulator"))
}

func TestDescribe(t *testing.T) {
	assert.Equal(t, "no error", describe(nil))
	assert.Equal(t, "connection refused", describe(wrapErrno()))
}

// testCAPEM returns a fresh self-signed CA certificate in PEM.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "simulator test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func wrapErrno() error {
	return fmt.Errorf("shellyws: dial ws://127.0.0.1:1/: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
}
