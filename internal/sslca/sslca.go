// Package sslca turns an ssl_ca value (protocol section 1) into TLS
// settings, one way for every client a device has: the outbound
// websocket, MQTT and webhooks.
package sslca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// The values of ssl_ca; the root package exports them as SSLCABuiltin,
// SSLCAUser and SSLCAInsecure.
const (
	Builtin  = "ca.pem"
	User     = "user_ca.pem"
	Insecure = "*"
)

// ErrNoUserCA is wrapped by every failure to use the user CA. The root
// package exports it as shellyws.ErrNoUserCA.
var ErrNoUserCA = errors.New("shellyws: no usable user CA")

// Apply makes tc verify the server as mode asks. "" means Builtin, which
// verifies against builtin (nil: the system roots); User verifies against
// the PEM that userCA loads; Insecure verifies nothing. Any other mode is
// an error, so a bad value never quietly falls back to another check.
func Apply(tc *tls.Config, mode string, builtin *x509.CertPool, userCA func() ([]byte, error)) error {
	switch mode {
	case "", Builtin:
		tc.RootCAs = builtin
	case User:
		pool, err := userPool(userCA)
		if err != nil {
			return err
		}
		tc.RootCAs = pool
	case Insecure:
		tc.InsecureSkipVerify = true
	default:
		return fmt.Errorf("shellyws: invalid ssl_ca %q", mode)
	}
	return nil
}

func userPool(load func() ([]byte, error)) (*x509.CertPool, error) {
	if load == nil {
		return nil, fmt.Errorf("%w: ssl_ca is %q but none was provided", ErrNoUserCA, User)
	}
	pem, err := load()
	if err != nil {
		return nil, fmt.Errorf("%w: loading it: %w", ErrNoUserCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: it holds no PEM certificate", ErrNoUserCA)
	}
	return pool, nil
}
