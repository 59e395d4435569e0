package resource

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Certificate is a TLS certificate chain and its private key, used by network components
// (证书管理).
type Certificate struct {
	Meta
	Name string `json:"name"`
	// Cert holds one or more PEM certificates, leaf first.
	Cert string `json:"cert"`
	// Key is the PEM private key of the first certificate. Write-only.
	Key string `json:"key,omitempty" secret:"true"`
	// Trust is an optional PEM CA bundle for verifying device client certificates.
	Trust       string `json:"trust,omitempty"`
	Description string `json:"description,omitempty"`

	// Derived from Cert when the certificate is saved; read-only.
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	DNSNames          []string  `json:"dnsNames"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
	FingerprintSHA256 string    `json:"fingerprintSha256"`
}

// DisplayName is the certificate's name, for search and sorting.
func (c *Certificate) DisplayName() string { return c.Name }

// Certificates is the certificate collection.
var Certificates = Register(&Kind{
	Name: "certificates",
	New:  func() Object { return new(Certificate) },
})

// Validate checks every field and fills in the derived ones. It reports every bad field at
// once so a user can fix a form in one round trip.
func (c *Certificate) Validate() Errors {
	var errs Errors
	ValidateID(&errs, c.ID)
	ValidateName(&errs, "name", c.Name)
	ValidateDescription(&errs, "description", c.Description)

	chain, certErr := parseCertificates(c.Cert)
	if certErr != nil {
		errs.Add("cert", "%s", certErr)
	}
	key, keyErr := parsePrivateKey(c.Key)
	if keyErr != nil {
		errs.Add("key", "%s", keyErr)
	}
	if c.Trust != "" {
		if _, err := parseCertificates(c.Trust); err != nil {
			errs.Add("trust", "%s", err)
		}
	}
	if certErr == nil && keyErr == nil && !keyMatches(chain[0], key) {
		errs.Add("key", "does not match the first certificate in cert")
	}
	if certErr == nil {
		leaf := chain[0]
		sum := sha256.Sum256(leaf.Raw)
		c.Subject = leaf.Subject.String()
		c.Issuer = leaf.Issuer.String()
		c.DNSNames = append([]string{}, leaf.DNSNames...)
		c.NotBefore = leaf.NotBefore.UTC()
		c.NotAfter = leaf.NotAfter.UTC()
		c.FingerprintSHA256 = hex.EncodeToString(sum[:])
	}
	return errs
}

// ValidateAgainst is Validate for a replacement of old: when the PEM material is unchanged
// (a rename, a new description) the derived fields are kept instead of parsing and
// checking the certificate and key again.
func (c *Certificate) ValidateAgainst(old *Certificate) Errors {
	if old == nil || c.Cert != old.Cert || c.Key != old.Key || c.Trust != old.Trust {
		return c.Validate()
	}
	var errs Errors
	ValidateID(&errs, c.ID)
	ValidateName(&errs, "name", c.Name)
	ValidateDescription(&errs, "description", c.Description)
	c.Subject, c.Issuer, c.DNSNames = old.Subject, old.Issuer, old.DNSNames
	c.NotBefore, c.NotAfter, c.FingerprintSHA256 = old.NotBefore, old.NotAfter, old.FingerprintSHA256
	return errs
}

// parseCertificates decodes every PEM CERTIFICATE block of s.
func parseCertificates(s string) ([]*x509.Certificate, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("is required (PEM-encoded certificate)")
	}
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 && len(out) > 0 {
				return nil, fmt.Errorf("has text after certificate %d that is not a PEM block", len(out))
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a PEM block of type %q; only CERTIFICATE blocks are allowed", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")
	}
	return out, nil
}

// parsePrivateKey accepts PKCS#8, PKCS#1 (RSA) and SEC 1 (EC) keys. Its errors never quote
// the key.
func parsePrivateKey(s string) (crypto.PrivateKey, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("is required (PEM-encoded private key)")
	}
	// Skip blocks that are not keys, such as the EC PARAMETERS block that
	// `openssl ecparam -genkey` writes first.
	rest := []byte(s)
	var block *pem.Block
	for {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("holds no PEM private key (expected -----BEGIN PRIVATE KEY-----)")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("PEM block of type %q is not a PKCS#8, PKCS#1 or EC private key", block.Type)
}

func keyMatches(cert *x509.Certificate, key crypto.PrivateKey) bool {
	type publicKeyer interface {
		Public() crypto.PublicKey
		Equal(crypto.PrivateKey) bool
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.PublicKey.Equal(cert.PublicKey)
	case *ecdsa.PrivateKey:
		return k.PublicKey.Equal(cert.PublicKey)
	case ed25519.PrivateKey:
		return k.Public().(ed25519.PublicKey).Equal(cert.PublicKey)
	case publicKeyer:
		pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
		return ok && pub.Equal(cert.PublicKey)
	}
	return false
}
