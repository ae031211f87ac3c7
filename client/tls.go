package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// TLSConfigFromFiles builds a Config.TLS from PEM files, the way the
// raftcache command line does for --cacert, --cert and --key:
//
//   - caFile: the CA that signed the members' HTTPS certificates (their
//     --tls-cert); "" trusts the system roots.
//   - certFile, keyFile: a client certificate and its key, for a cluster
//     whose members require one (--tls-client-ca); both or neither.
//
// The result requires TLS 1.2 or later and checks the members' host names
// (or IP addresses) against their certificates.
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("client: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("client: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// handshakeFailed reports whether err is a failed TLS handshake: the
// server's certificate was not trusted, the server refused the client's
// certificate (an alert from the server; under TLS 1.3 it arrives after
// the client has written its request, which the server never read), or
// the server does not speak TLS. In every case no HTTP request reached
// the server.
func handshakeFailed(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &record):
		return true
	case errors.As(err, &op) && op.Op == "remote error" && strings.HasPrefix(op.Err.Error(), "tls: "):
		return true
	}
	// net/http replaces the RecordHeaderError of an https request answered
	// in plaintext with a string of its own.
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}
