package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/linkops/linkops/resource"
)

// Cert is a generated certificate with its key, PEM-encoded, and the parsed leaf.
type Cert struct {
	CertPEM string
	KeyPEM  string
	Leaf    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// CA is a throwaway certificate authority.
type CA struct{ Cert }

// NewCA makes a self-signed CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "linkops test CA", Organization: []string{"linkops tests"}},
		NotBefore:             time.Now().Add(-time.Hour).Truncate(time.Second),
		NotAfter:              time.Now().Add(24 * time.Hour).Truncate(time.Second),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	return &CA{Cert: sign(t, tmpl, tmpl, key, key)}
}

// Issue makes a server certificate for dnsNames signed by the CA.
func (ca *CA) Issue(t testing.TB, cn string, dnsNames ...string) Cert {
	t.Helper()
	return ca.issue(t, cn, x509.ExtKeyUsageServerAuth, dnsNames)
}

// IssueClient makes a device (client) certificate signed by the CA, for mutual TLS.
func (ca *CA) IssueClient(t testing.TB, cn string) Cert {
	t.Helper()
	return ca.issue(t, cn, x509.ExtKeyUsageClientAuth, nil)
}

func (ca *CA) issue(t testing.TB, cn string, usage x509.ExtKeyUsage, dnsNames []string) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"linkops tests"}},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Minute).Truncate(time.Second),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	return sign(t, tmpl, ca.Leaf, key, ca.key)
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) Cert {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Cert{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})),
		Leaf:    leaf,
		key:     key,
	}
}

// Resource is the certificate as a certificate resource with a raft index (a higher
// index is an update, as the supervisor sees it) and an optional trust bundle.
func (c Cert) Resource(id string, index uint64, trust string) *resource.Certificate {
	return &resource.Certificate{Meta: resource.Meta{ID: id, Index: index}, Cert: c.CertPEM, Key: c.KeyPEM, Trust: trust}
}

// Pair is the certificate and key as crypto/tls uses them.
func (c Cert) Pair() tls.Certificate {
	pair, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	if err != nil {
		panic(fmt.Sprintf("testutil: a generated certificate does not load: %v", err)) // cannot happen
	}
	return pair
}

// Pool is a certificate pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	return pool
}

// ClientTLS is a client configuration that trusts the CA for "localhost" and presents
// the given client certificates.
func (ca *CA) ClientTLS(certs ...Cert) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	for _, c := range certs {
		cfg.Certificates = append(cfg.Certificates, c.Pair())
	}
	return cfg
}
