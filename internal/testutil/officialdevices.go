package testutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/protocol/official"
)

// CreateProductWithKey is CreateProductWithDevices with a secureKey of the caller's: the
// CoAP transport encrypts under it, so it must be 16, 24 or 32 characters there.
func CreateProductWithKey(t testing.TB, admin *client.Client, id, gatewayID, secureKey string, devices ...string) Product {
	t.Helper()
	p := Product{ID: id, SecureID: id + "-sid", SecureKey: secureKey, GatewayID: gatewayID}
	Do(t, admin, http.MethodPost, "/api/v1/products", map[string]any{"id": p.ID, "name": p.ID, "gatewayId": gatewayID,
		"secureId": p.SecureID, "secureKey": p.SecureKey}, nil)
	if len(devices) > 0 {
		batch := make([]map[string]any, len(devices))
		for i, d := range devices {
			batch[i] = map[string]any{"id": d, "name": d, "productId": p.ID}
		}
		Do(t, admin, http.MethodPost, "/api/v1/devices/batch", batch, nil)
	}
	return p
}

// deviceWait bounds every read of a simulated device: generous, since the machine is
// shared, and only there so that a lost answer fails the test instead of hanging it.
const deviceWait = 20 * time.Second

// TCPDevice is a device speaking the official binary protocol over TCP (SPEC §5.2) on a
// plain net.Conn, so that a test sees every byte the server writes.
type TCPDevice struct {
	Conn net.Conn
}

// DialTCPDevice connects to addr (host:port); the connection is closed when the test ends.
func DialTCPDevice(t testing.TB, addr string) *TCPDevice {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, deviceWait)
	if err != nil {
		t.Fatalf("tcp device to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &TCPDevice{Conn: conn}
}

// Send writes one length-prefixed frame.
func (d *TCPDevice) Send(t testing.TB, f official.Frame) {
	t.Helper()
	b, err := official.EncodeTCP(f)
	if err != nil {
		t.Fatalf("encode %s frame: %v", f.Type, err)
	}
	if _, err := d.Conn.Write(b); err != nil {
		t.Fatalf("write %s frame: %v", f.Type, err)
	}
}

// Read reads the next frame the server writes: its exact bytes, length prefix included,
// and their decoding.
func (d *TCPDevice) Read(t testing.TB) ([]byte, official.Frame) {
	t.Helper()
	raw, err := d.ReadRaw()
	if err != nil {
		t.Fatalf("read a frame from the server: %v", err)
	}
	f, err := official.DecodeTCP(raw)
	if err != nil {
		t.Fatalf("the server wrote a frame that does not decode (% x): %v", raw, err)
	}
	return raw, f
}

// ReadRaw reads the next length-prefixed frame's bytes; io.EOF means the server closed the
// connection.
func (d *TCPDevice) ReadRaw() ([]byte, error) {
	_ = d.Conn.SetReadDeadline(time.Now().Add(deviceWait))
	var hdr [4]byte
	if _, err := io.ReadFull(d.Conn, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("the server announced a frame of %d bytes", n)
	}
	raw := make([]byte, 4+n)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(d.Conn, raw[4:]); err != nil {
		return nil, err
	}
	return raw, nil
}

// WaitClosed waits for the server to close the connection, failing if it writes
// anything meanwhile or keeps it open.
func (d *TCPDevice) WaitClosed(t testing.TB, what string) {
	t.Helper()
	_ = d.Conn.SetReadDeadline(time.Now().Add(deviceWait))
	b := make([]byte, 256)
	n, err := d.Conn.Read(b)
	if n > 0 {
		t.Fatalf("%s: the server wrote % x, want the connection closed", what, b[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after %v", what, deviceWait)
	}
}

// UDPDevice is a device speaking the official protocol's datagrams (SPEC §5.2) from one
// socket, so that downlinks to its last address reach it.
type UDPDevice struct {
	Conn *net.UDPConn
}

// DialUDPDevice opens a socket connected to addr; closed when the test ends.
func DialUDPDevice(t testing.TB, addr string) *UDPDevice {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatalf("udp device to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &UDPDevice{Conn: conn}
}

// Send writes one datagram carrying key and f.
func (d *UDPDevice) Send(t testing.TB, key string, f official.Frame) {
	t.Helper()
	b, err := official.EncodeUDP(official.Datagram{AuthType: official.AuthToken, Key: key, Frame: f})
	if err != nil {
		t.Fatalf("encode %s datagram: %v", f.Type, err)
	}
	if _, err := d.Conn.Write(b); err != nil {
		t.Fatalf("write %s datagram: %v", f.Type, err)
	}
}

// Read reads the next datagram within wait: its bytes and their decoding. ok is false
// when none came.
func (d *UDPDevice) Read(t testing.TB, wait time.Duration) (raw []byte, dg official.Datagram, ok bool) {
	t.Helper()
	_ = d.Conn.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 64<<10)
	n, err := d.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, official.Datagram{}, false
	}
	if err != nil {
		t.Fatalf("read a datagram: %v", err)
	}
	dg, err = official.DecodeUDP(b[:n])
	if err != nil {
		t.Fatalf("the server sent a datagram that does not decode (% x): %v", b[:n], err)
	}
	return b[:n], dg, true
}

// Exchange sends f until the server answers with an ack of its seq (a datagram may be
// lost: a device retries), and returns the ack. Datagrams other than that ack are
// handed to other, if not nil, else fail the test.
func (d *UDPDevice) Exchange(t testing.TB, key string, f official.Frame, other func(official.Datagram)) official.Datagram {
	t.Helper()
	deadline := time.Now().Add(3 * deviceWait)
	for time.Now().Before(deadline) {
		d.Send(t, key, f)
		until := time.Now().Add(2 * time.Second)
		for time.Now().Before(until) {
			_, dg, ok := d.Read(t, time.Until(until))
			if !ok {
				break
			}
			if dg.Frame.Type == official.FrameAck && dg.Frame.Seq == f.Seq {
				return dg
			}
			if other == nil {
				t.Fatalf("waiting for the ack of seq %d, got a %s datagram: %+v", f.Seq, dg.Frame.Type, dg)
			}
			other(dg)
		}
	}
	t.Fatalf("no ack for the %s datagram of seq %d within %v", f.Type, f.Seq, 3*deviceWait)
	return official.Datagram{}
}

// CoAPAnswer is what libcoap's coap-client said about one request.
type CoAPAnswer struct {
	// Code is the response code as "2.01", "" when none was seen.
	Code string
	// Body is the response payload.
	Body []byte
	// Output is what coap-client printed.
	Output string
}

var coapCode = regexp.MustCompile(`\bc:([0-9]\.[0-9]{2})\b`)

// CoAPPost posts payload (binary, through a file: `-e` would mangle it) to url with the
// real libcoap client, coap-client-notls, and returns the response.
func CoAPPost(t testing.TB, url string, payload []byte, extra ...string) CoAPAnswer {
	t.Helper()
	a, err := PostCoAP(t.TempDir(), url, payload, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// PostCoAP is CoAPPost for goroutines (which must not call t.Fatal): dir is a directory
// of the caller's for the request and response files.
func PostCoAP(dir, url string, payload []byte, extra ...string) (CoAPAnswer, error) {
	f, err := os.CreateTemp(dir, "coap-*")
	if err != nil {
		return CoAPAnswer{}, err
	}
	in := f.Name()
	out := in + ".out"
	defer os.Remove(in)
	defer os.Remove(out)
	_, err = f.Write(payload)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return CoAPAnswer{}, err
	}
	// -v 6 shows the response PDU ("v:1 t:ACK c:2.01 ..."): the only place coap-client
	// names a success code.
	args := append([]string{"-m", "post", "-f", in, "-o", out, "-v", "6", "-B", "20"}, extra...)
	args = append(args, url)
	cmd := exec.Command("coap-client-notls", args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		return CoAPAnswer{}, fmt.Errorf("run coap-client-notls: %w", err)
	}
	a := CoAPAnswer{Output: buf.String()}
	// The request's PDU is shown too (c:0.02 for a POST); the response is the last other.
	for _, m := range coapCode.FindAllStringSubmatch(a.Output, -1) {
		if !strings.HasPrefix(m[1], "0.") {
			a.Code = m[1]
		}
	}
	a.Body, _ = os.ReadFile(out)
	return a, nil
}
