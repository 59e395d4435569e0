package resource_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/resource"
)

// testPKI is a CA and leaves of every supported key type, generated once per test binary.
type testPKI struct {
	caPEM  string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	leaves map[string]leaf
}

type leaf struct {
	der     []byte
	certPEM string
	key     crypto.Signer
	keyPEM  string // PKCS#8
	tmpl    *x509.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

func getPKI(t *testing.T) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = buildPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(key any) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return pemOf("PRIVATE KEY", der), nil
}

var (
	notBefore = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	notAfter  = time.Date(2034, 1, 2, 3, 4, 5, 0, time.UTC)
)

func buildPKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "linkops unit CA", Organization: []string{"linkops"}},
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notAfter.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &testPKI{caPEM: pemOf("CERTIFICATE", caDER), caCert: caCert, caKey: caKey, leaves: map[string]leaf{}}

	keys := map[string]func() (crypto.Signer, error){
		"ecdsa-p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"rsa-2048":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		"ed25519": func() (crypto.Signer, error) {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		},
	}
	serial := int64(10)
	for name, gen := range keys {
		key, err := gen()
		if err != nil {
			return nil, err
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name + ".example.com", Organization: []string{"Example " + name}, Country: []string{"CN"}},
			DNSNames:     []string{name + ".example.com", "www." + name + ".example.com"},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		if err != nil {
			return nil, err
		}
		keyPEM, err := pkcs8(key)
		if err != nil {
			return nil, err
		}
		p.leaves[name] = leaf{der: der, certPEM: pemOf("CERTIFICATE", der), key: key, keyPEM: keyPEM, tmpl: tmpl}
	}
	return p, nil
}

func errsByField(errs resource.Errors) map[string]string {
	m := map[string]string{}
	for _, e := range errs {
		m[e.Field] += e.Message + ";"
	}
	return m
}

// assertNoKeyText fails if any error message quotes the key material.
func assertNoKeyText(t *testing.T, errs resource.Errors, keyPEMs ...string) {
	t.Helper()
	for _, keyPEM := range keyPEMs {
		for _, line := range strings.Split(keyPEM, "\n") {
			if strings.HasPrefix(line, "-----") || len(line) < 8 {
				continue
			}
			for _, e := range errs {
				if strings.Contains(e.Message, line) || strings.Contains(e.Message, line[:8]) {
					t.Errorf("error on %s quotes the private key: %q", e.Field, e.Message)
				}
			}
		}
	}
}

func TestCertificateValidateDerivesFields(t *testing.T) {
	p := getPKI(t)
	for name, l := range p.leaves {
		t.Run(name, func(t *testing.T) {
			c := &resource.Certificate{
				Meta: resource.Meta{ID: "c-" + name},
				Name: "证书 " + name,
				Cert: l.certPEM + p.caPEM, // leaf first, then its CA
				Key:  l.keyPEM,
				// Whatever the client sends in derived fields is replaced.
				Subject: "CN=forged", Issuer: "CN=forged", DNSNames: []string{"evil.example"},
				FingerprintSHA256: "forged",
			}
			if errs := c.Validate(); len(errs) != 0 {
				t.Fatalf("Validate = %v", errs)
			}
			sum := sha256.Sum256(l.der)
			if c.FingerprintSHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("fingerprint = %s, want %x", c.FingerprintSHA256, sum)
			}
			if want := "CN=" + name + ".example.com,O=Example " + name + ",C=CN"; c.Subject != want {
				t.Errorf("subject = %q, want %q", c.Subject, want)
			}
			if want := "CN=linkops unit CA,O=linkops"; c.Issuer != want {
				t.Errorf("issuer = %q, want %q (the CA, not the leaf)", c.Issuer, want)
			}
			if strings.Join(c.DNSNames, ",") != name+".example.com,www."+name+".example.com" {
				t.Errorf("dnsNames = %v", c.DNSNames)
			}
			if !c.NotBefore.Equal(notBefore) || !c.NotAfter.Equal(notAfter) {
				t.Errorf("validity = %v .. %v, want %v .. %v", c.NotBefore, c.NotAfter, notBefore, notAfter)
			}
			if c.NotBefore.Location() != time.UTC || c.NotAfter.Location() != time.UTC {
				t.Errorf("validity not in UTC: %v, %v", c.NotBefore.Location(), c.NotAfter.Location())
			}
			if c.Key != l.keyPEM || c.Cert != l.certPEM+p.caPEM {
				t.Error("Validate changed the cert or key text")
			}

			// A trust bundle of CA certificates is accepted.
			c.Trust = p.caPEM
			if errs := c.Validate(); len(errs) != 0 {
				t.Errorf("with trust: %v", errs)
			}
		})
	}
}

func TestCertificateValidateKeyEncodings(t *testing.T) {
	p := getPKI(t)
	rsaLeaf, ecLeaf := p.leaves["rsa-2048"], p.leaves["ecdsa-p256"]
	sec1, err := x509.MarshalECPrivateKey(ecLeaf.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ cert, key string }{
		"rsa pkcs1":  {rsaLeaf.certPEM, pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaLeaf.key.(*rsa.PrivateKey)))},
		"ec sec1":    {ecLeaf.certPEM, pemOf("EC PRIVATE KEY", sec1)},
		"leaf alone": {ecLeaf.certPEM, ecLeaf.keyPEM},
		"crlf":       {strings.ReplaceAll(ecLeaf.certPEM, "\n", "\r\n"), strings.ReplaceAll(ecLeaf.keyPEM, "\n", "\r\n")},
		// `openssl ecparam -genkey` writes an EC PARAMETERS block before the key.
		"ec parameters first": {ecLeaf.certPEM, pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}) + pemOf("EC PRIVATE KEY", sec1)},
	} {
		c := &resource.Certificate{Name: "x", Cert: tc.cert, Key: tc.key}
		if errs := c.Validate(); len(errs) != 0 {
			t.Errorf("%s: Validate = %v", name, errs)
		}
	}
}

func TestCertificateValidateErrors(t *testing.T) {
	p := getPKI(t)
	ec, rsaL, ed := p.leaves["ecdsa-p256"], p.leaves["rsa-2048"], p.leaves["ed25519"]
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherECPEM, _ := pkcs8(otherEC)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	otherEdPEM, _ := pkcs8(otherEd)
	caKeyPEM, _ := pkcs8(p.caKey)
	allKeys := []string{ec.keyPEM, rsaL.keyPEM, ed.keyPEM, otherECPEM, otherEdPEM, caKeyPEM}

	cases := []struct {
		name       string
		cert, key  string
		trust      string
		field      string
		msgContain string
	}{
		{"ecdsa key of another cert", ec.certPEM, otherECPEM, "", "key", "does not match"},
		{"ed25519 key of another cert", ed.certPEM, otherEdPEM, "", "key", "does not match"},
		{"rsa key for an ecdsa cert", ec.certPEM, rsaL.keyPEM, "", "key", "does not match"},
		{"key of the second cert in the chain", ec.certPEM + p.caPEM, caKeyPEM, "", "key", "does not match"},
		{"chain in the wrong order", p.caPEM + ec.certPEM, ec.keyPEM, "", "key", "does not match"},
		{"garbage cert", "this is not a certificate", ec.keyPEM, "", "cert", ""},
		{"corrupt certificate block", pemOf("CERTIFICATE", []byte("garbage")), ec.keyPEM, "", "cert", "does not parse"},
		{"private key as cert", ec.keyPEM, ec.keyPEM, "", "cert", "PRIVATE KEY"},
		{"rsa private key as cert", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaL.key.(*rsa.PrivateKey))), rsaL.keyPEM, "", "cert", "PRIVATE KEY"},
		{"missing cert", "", ec.keyPEM, "", "cert", "required"},
		{"missing key", ec.certPEM, "", "", "key", "required"},
		{"blank key", ec.certPEM, " \n\t", "", "key", "required"},
		{"garbage key", ec.certPEM, "not a key at all", "", "key", ""},
		{"certificate as key", ec.certPEM, ec.certPEM, "", "key", ""},
		{"corrupt key block", ec.certPEM, pemOf("PRIVATE KEY", []byte("garbage")), "", "key", ""},
		{"truncated key", ec.certPEM, ec.keyPEM[:len(ec.keyPEM)/2] + "\n-----END PRIVATE KEY-----\n", "", "key", ""},
		{"bad trust", ec.certPEM, ec.keyPEM, "not a bundle", "trust", ""},
		{"key in trust", ec.certPEM, ec.keyPEM, ec.keyPEM, "trust", "PRIVATE KEY"},
		{"corrupt trust block", ec.certPEM, ec.keyPEM, pemOf("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01}), "trust", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &resource.Certificate{Meta: resource.Meta{ID: "c1"}, Name: "n", Cert: tc.cert, Key: tc.key, Trust: tc.trust}
			errs := c.Validate()
			by := errsByField(errs)
			if len(errs) != 1 || by[tc.field] == "" {
				t.Fatalf("Validate = %v, want exactly one error on %q", errs, tc.field)
			}
			if !strings.Contains(by[tc.field], tc.msgContain) {
				t.Errorf("message %q does not mention %q", by[tc.field], tc.msgContain)
			}
			assertNoKeyText(t, errs, allKeys...)
		})
	}
}

func TestCertificateValidateReportsEveryField(t *testing.T) {
	p := getPKI(t)
	c := &resource.Certificate{
		Meta:        resource.Meta{ID: "bad id!"},
		Name:        "",
		Description: strings.Repeat("x", 201),
		Cert:        "junk",
		Key:         "",
		Trust:       "junk",
	}
	by := errsByField(c.Validate())
	for _, f := range []string{"id", "name", "description", "cert", "key", "trust"} {
		if by[f] == "" {
			t.Errorf("no error on %s; got %v", f, by)
		}
	}
	if c.FingerprintSHA256 != "" || c.Subject != "" {
		t.Errorf("derived fields filled from an invalid cert: %+v", c)
	}

	// A bad key next to a good cert: the key error, and still no key text anywhere.
	l := p.leaves["rsa-2048"]
	broken := strings.Replace(l.keyPEM, "\n", "\nAAAA", 3)
	c = &resource.Certificate{Name: "n", Cert: l.certPEM, Key: broken}
	errs := c.Validate()
	if by := errsByField(errs); len(errs) != 1 || by["key"] == "" {
		t.Errorf("Validate = %v, want one error on key", errs)
	}
	assertNoKeyText(t, errs, l.keyPEM, broken)
}

func TestCertificateDisplayName(t *testing.T) {
	var n resource.Named = &resource.Certificate{Name: "网站"}
	if n.DisplayName() != "网站" {
		t.Errorf("DisplayName = %q", n.DisplayName())
	}
	n = &resource.User{Username: "alice"}
	if n.DisplayName() != "alice" {
		t.Errorf("DisplayName = %q", n.DisplayName())
	}
}

func TestCertificateTrailingJunkIsRefused(t *testing.T) {
	p := getPKI(t)
	ec := p.leaves["ecdsa-p256"]
	c := &resource.Certificate{Name: "x", Cert: ec.certPEM + "-----BEGIN CERTIFICATE-----\nbroken", Key: ec.keyPEM}
	errs := c.Validate()
	if len(errs) != 1 || errs[0].Field != "cert" {
		t.Fatalf("Validate = %v, want one error on cert", errs)
	}
}

func TestCertificateValidateAgainstUnchangedPEM(t *testing.T) {
	p := getPKI(t)
	ec := p.leaves["ecdsa-p256"]
	old := &resource.Certificate{Name: "old", Cert: ec.certPEM, Key: ec.keyPEM}
	if errs := old.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	// Same PEM, new name: derived fields are carried over, names still checked.
	next := &resource.Certificate{Name: "renamed", Cert: ec.certPEM, Key: ec.keyPEM, Subject: "forged"}
	if errs := next.ValidateAgainst(old); len(errs) != 0 || next.Subject != old.Subject || next.FingerprintSHA256 != old.FingerprintSHA256 {
		t.Fatalf("rename: %v %+v", errs, next)
	}
	bad := &resource.Certificate{Name: strings.Repeat("x", 65), Cert: ec.certPEM, Key: ec.keyPEM}
	if errs := bad.ValidateAgainst(old); len(errs) != 1 || errs[0].Field != "name" {
		t.Fatalf("long name: %v", errs)
	}
	// Changed PEM is checked in full.
	other := p.leaves["rsa-2048"]
	mismatch := &resource.Certificate{Name: "x", Cert: other.certPEM, Key: ec.keyPEM}
	if errs := mismatch.ValidateAgainst(old); len(errs) != 1 || errs[0].Field != "key" {
		t.Fatalf("changed cert: %v", errs)
	}
}
