package shellyws_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

func sslCA(v string) *string { return &v }

func TestTLSModes(t *testing.T) {
	srv := shellywstest.NewTLSServer(t)
	other := shellywstest.NewTLSServer(t) // a CA the server's certificate is not signed by

	for _, tc := range []struct {
		name      string
		sslCA     *string
		opts      []shellyws.Option
		connects  bool
		wantErrIs error
	}{
		{name: "star skips verification", sslCA: sslCA("*"), connects: true},
		{name: "user CA right", sslCA: sslCA("user_ca.pem"), connects: true,
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return srv.CACertPEM(), nil })}},
		{name: "user CA wrong", sslCA: sslCA("user_ca.pem"),
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return other.CACertPEM(), nil })}},
		{name: "user CA missing", sslCA: sslCA("user_ca.pem"), wantErrIs: shellyws.ErrNoUserCA},
		{name: "user CA not PEM", sslCA: sslCA("user_ca.pem"), wantErrIs: shellyws.ErrNoUserCA,
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return []byte("not a pem"), nil })}},
		{name: "user CA unreadable", sslCA: sslCA("user_ca.pem"), wantErrIs: shellyws.ErrNoUserCA,
			opts: []shellyws.Option{shellyws.WithUserCA(func() ([]byte, error) { return nil, errors.New("flash read failed") })}},
		{name: "ca.pem against system roots fails", sslCA: sslCA("ca.pem")},
		{name: "null against system roots fails", sslCA: nil},
		{name: "ca.pem with the embedder's roots", sslCA: sslCA("ca.pem"), connects: true,
			opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}},
		{name: "null with the embedder's roots", sslCA: nil, connects: true,
			opts: []shellyws.Option{shellyws.WithRootCAs(srv.CertPool())}},
		{name: "ca.pem with other roots fails", sslCA: sslCA("ca.pem"),
			opts: []shellyws.Option{shellyws.WithRootCAs(other.CertPool())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := enabledConfig(srv.URL())
			cfg.SSLCA = tc.sslCA
			before := srv.Handshakes()
			dev := startDevice(t, cfg, tc.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if tc.connects {
				require.NoError(t, dev.AwaitConnected(ctx))
				return
			}
			// Several failed attempts, none connected, the error visible.
			require.Eventually(t, func() bool { return dev.Stats().DialFailures >= 3 }, waitTimeout, time.Millisecond)
			assert.Equal(t, srv.Handshakes(), before, "no handshake completes without a verified certificate")
			assert.NotEqual(t, shellyws.StateConnected, dev.State())
			err := dev.LastError()
			require.Error(t, err)
			if tc.wantErrIs != nil {
				assert.ErrorIs(t, err, tc.wantErrIs)
			} else {
				var uerr x509.UnknownAuthorityError
				assert.ErrorAs(t, err, &uerr, "got %v", err)
			}
		})
	}
}
