package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/internal/mosquitto"
	"github.com/shellyws/shellyws/mqtt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns the certificate's PEM.
func selfSigned(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certPEM
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM := selfSigned(t, dir)
	// As root mosquitto drops to its own user, which cannot read the
	// test's private directory: it stays the test's user.
	b := mosquitto.Start(t, "certfile "+filepath.Join(dir, "cert.pem"), "keyfile "+filepath.Join(dir, "key.pem"), "user "+currentUser(t))

	t.Run("user_ca.pem verifies", func(t *testing.T) {
		sub := b.SubscribeTLS(t, filepath.Join(dir, "cert.pem"), "tls1/online")
		cfg := testConfig(b.Addr, "tls1")
		cfg.SSLCA = ptr("user_ca.pem")
		d := newDevice(t, cfg, mqtt.WithUserCA(func() ([]byte, error) { return certPEM, nil }))
		d.run(t)
		assert.Equal(t, "true", sub.Next(t, waitTimeout).Payload)
	})
	t.Run("ca.pem refuses an unknown CA", func(t *testing.T) {
		dialer := &cutDialer{}
		cfg := testConfig(b.Addr, "tls2")
		cfg.SSLCA = ptr("ca.pem")
		d := newDevice(t, cfg, mqtt.WithDialContext(dialer.dial), mqtt.WithRootCAs(x509.NewCertPool()))
		d.run(t)
		require.Eventually(t, func() bool { return dialer.dials.Load() >= 3 }, waitTimeout, time.Millisecond)
		assert.False(t, d.cl.Connected())
	})
	t.Run("* skips verification", func(t *testing.T) {
		sub := b.SubscribeTLS(t, filepath.Join(dir, "cert.pem"), "tls3/online")
		cfg := testConfig(b.Addr, "tls3")
		cfg.SSLCA = ptr("*")
		d := newDevice(t, cfg)
		d.run(t)
		assert.Equal(t, "true", sub.Next(t, waitTimeout).Payload)
	})
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}
