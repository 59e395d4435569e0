package listeners

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/linkops/linkops/resource"
)

// TLSSource is the certificate material of one listener, swapped in place when its
// certificate resource changes: every handshake reads the current value, so new
// handshakes present the new certificate while established connections keep theirs.
type TLSSource struct {
	v atomic.Pointer[tlsMaterial]
}

type tlsMaterial struct {
	certID  string
	index   uint64 // the certificate's raft index: unchanged means nothing to reload
	cert    tls.Certificate
	trust   *x509.CertPool
	trusted bool
}

// NewTLSSource loads a certificate resource.
func NewTLSSource(c *resource.Certificate) (*TLSSource, error) {
	s := &TLSSource{}
	if err := s.Update(c); err != nil {
		return nil, err
	}
	return s, nil
}

// Update loads c if it changed since the last load. The previous material stays in use
// when c does not load.
func (s *TLSSource) Update(c *resource.Certificate) error {
	if cur := s.v.Load(); cur != nil && cur.certID == c.ID && cur.index == c.Index && c.Index != 0 {
		return nil
	}
	pair, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return fmt.Errorf("certificate %s does not load: %w", c.ID, err)
	}
	m := &tlsMaterial{certID: c.ID, index: c.Index, cert: pair}
	if c.Trust != "" {
		m.trust = x509.NewCertPool()
		if !m.trust.AppendCertsFromPEM([]byte(c.Trust)) {
			return fmt.Errorf("certificate %s: its trust bundle holds no certificate", c.ID)
		}
		m.trusted = true
	}
	s.v.Store(m)
	return nil
}

// Certificate is the current certificate chain and key (nil before one loaded).
func (s *TLSSource) Certificate() *tls.Certificate {
	m := s.v.Load()
	if m == nil {
		return nil
	}
	return &m.cert
}

// ClientCAs is the pool that verifies device certificates, or nil when the certificate
// has no trust bundle (no client certificate asked for).
func (s *TLSSource) ClientCAs() *x509.CertPool {
	if m := s.v.Load(); m != nil && m.trusted {
		return m.trust
	}
	return nil
}

// ServerConfig is a TLS configuration for a TCP-based listener. Its GetConfigForClient
// reads the current material on every handshake; with a trust bundle, clients must
// present a certificate that it verifies (mutual TLS).
func (s *TLSSource) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.v.Load()
			if m == nil {
				return nil, errors.New("no certificate loaded")
			}
			cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cert}, NextProtos: nextProtos}
			if m.trusted {
				cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, m.trust
			}
			return cfg, nil
		},
	}
}

// VerifyClient verifies a client's DTLS certificate chain against the current trust
// bundle (pion/dtls calls it per handshake; its static ClientCAs could not be reloaded).
func (s *TLSSource) VerifyClient(rawCerts [][]byte) error {
	pool := s.ClientCAs()
	if pool == nil {
		return nil
	}
	if len(rawCerts) == 0 {
		return errors.New("a client certificate is required")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}
