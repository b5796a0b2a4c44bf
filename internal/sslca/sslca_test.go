package sslca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "user ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestApply(t *testing.T) {
	builtin := x509.NewCertPool()
	userPEM := selfSigned(t)
	load := func() ([]byte, error) { return userPEM, nil }

	for _, mode := range []string{"", Builtin} {
		tc := &tls.Config{}
		require.NoError(t, Apply(tc, mode, builtin, load), "%q", mode)
		assert.Same(t, builtin, tc.RootCAs, "%q verifies against the built-in bundle", mode)
		assert.False(t, tc.InsecureSkipVerify)
	}

	tc := &tls.Config{}
	require.NoError(t, Apply(tc, User, builtin, load))
	require.NotNil(t, tc.RootCAs)
	assert.NotSame(t, builtin, tc.RootCAs)
	assert.False(t, tc.RootCAs.Equal(builtin), "the user CA's pool, not the bundle")

	tc = &tls.Config{}
	require.NoError(t, Apply(tc, Insecure, builtin, nil))
	assert.True(t, tc.InsecureSkipVerify)
	assert.Nil(t, tc.RootCAs)

	assert.EqualError(t, Apply(&tls.Config{}, "ca.pem ", builtin, load), `shellyws: invalid ssl_ca "ca.pem "`)
}

func TestUserCAFailuresWrapErrNoUserCA(t *testing.T) {
	flash := errors.New("flash read failed")
	for name, load := range map[string]func() ([]byte, error){
		"none given": nil,
		"load fails": func() ([]byte, error) { return nil, flash },
		"not PEM":    func() ([]byte, error) { return []byte("not a pem"), nil },
		"empty":      func() ([]byte, error) { return nil, nil },
	} {
		tc := &tls.Config{}
		err := Apply(tc, User, nil, load)
		assert.ErrorIs(t, err, ErrNoUserCA, name)
		assert.Nil(t, tc.RootCAs, "%s: nothing set on failure", name)
		assert.False(t, tc.InsecureSkipVerify, name)
	}
	assert.ErrorIs(t, Apply(&tls.Config{}, User, nil, func() ([]byte, error) { return nil, flash }), flash, "the cause is kept")
}
