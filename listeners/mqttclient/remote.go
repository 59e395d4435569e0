package mqttclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/linkops/linkops/listeners"
)

// allowedAddrs resolves host and returns its addresses with port, in the resolver's order,
// if every one is inside allow. A name is resolved once, here: the caller dials these
// addresses, never the name, so what was checked is what is connected to.
func allowedAddrs(ctx context.Context, host string, port int, allow []netip.Prefix) ([]netip.AddrPort, error) {
	target := net.JoinHostPort(host, strconv.Itoa(port))
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("MQTT broker %s: the port must be from 1 to 65535", target)
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve MQTT broker %s: %w", host, err)
	}
	var refused []string
	addrs := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		if !inside(ip, allow) {
			refused = append(refused, ip.String())
		}
		addrs = append(addrs, netip.AddrPortFrom(ip, uint16(port)))
	}
	if len(refused) > 0 {
		verb := "is"
		if len(refused) > 1 {
			verb = "are"
		}
		return nil, fmt.Errorf("connecting to %s is not allowed: %s %s outside --allow-remote (%s)",
			target, strings.Join(refused, ", "), verb, prefixList(allow))
	}
	return addrs, nil
}

// resolve returns the addresses of host (an IP literal is its own answer), IPv4 ones in
// their 4-byte form so that 127.0.0.0/8 matches them.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	found, err := net.DefaultResolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, "."))
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	for _, ip := range found {
		if ip = ip.Unmap(); !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("the name has no address")
	}
	return ips, nil
}

// inside reports whether ip is in one of the prefixes (a zone does not change where an
// address is).
func inside(ip netip.Addr, allow []netip.Prefix) bool {
	ip = ip.WithZone("")
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func prefixList(allow []netip.Prefix) string {
	if len(allow) == 0 {
		return "empty"
	}
	s := make([]string, len(allow))
	for i, p := range allow {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// dialFirst connects to the first of addrs that answers, as net.Dialer does for the
// addresses of one name, with TLS when newTLS is set. The error names every address tried.
func dialFirst(ctx context.Context, addrs []netip.AddrPort, newTLS func() (*tls.Config, error)) (net.Conn, netip.AddrPort, error) {
	var errs []error
	for _, a := range addrs {
		c, err := dialOne(ctx, a, newTLS)
		if err == nil {
			return c, a, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, errors.Join(errs...)
}

func dialOne(ctx context.Context, a netip.AddrPort, newTLS func() (*tls.Config, error)) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a.String())
	if err != nil || newTLS == nil {
		return c, err
	}
	cfg, err := newTLS()
	if err != nil {
		c.Close()
		return nil, err
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", a, err)
	}
	return tc, nil
}

// clientTLS is the TLS configuration of one connection, from the certificate as it is
// now (see the package documentation for what is trusted and presented).
func clientTLS(src *listeners.TLSSource, host string) (*tls.Config, error) {
	if src == nil {
		return nil, errors.New("secure is set but no certificate is loaded")
	}
	cert := src.Certificate()
	roots := src.ClientCAs()
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		for _, der := range cert.Certificate {
			if c, err := x509.ParseCertificate(der); err == nil {
				roots.AddCert(c)
			}
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: strings.TrimSuffix(host, ".")}
	if clientAuth(cert) {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg, nil
}

// clientAuth reports whether the certificate may authenticate a client: a broker that
// asks for a certificate rejects one made for servers only, where sending none might do.
func clientAuth(cert *tls.Certificate) bool {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return false
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return false
		}
	}
	if len(leaf.ExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny)
}
