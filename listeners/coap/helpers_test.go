package coap_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/coap"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/resource"
)

const (
	notls   = "coap-client-notls"
	openssl = "coap-client-openssl"
)

func plainSpec() listeners.Spec {
	return listeners.Spec{ComponentID: "coap1", Type: resource.TypeCoAPServer,
		Config: resource.NetworkConfig{Host: "127.0.0.1", Port: 0}}
}

// serve runs l until the test ends.
func serve(t *testing.T, l coap.Listener, spec listeners.Spec, h listeners.Handler) *listenertest.Running {
	t.Helper()
	return listenertest.Serve(t, l, spec, h)
}

// libcoap runs a libcoap client and returns what it printed: with -v 7 (which this
// adds) the messages it sent and received go to stdout, as "v:1 t:ACK c:2.04 …"; the
// diagnostic payload of an error answer goes to stderr as "4.04 no enabled …".
func libcoap(t *testing.T, tool string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"-v", "7", "-B", "10"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run() // its exit status does not tell a 4.xx answer from success
	return out.String(), errb.String()
}

func coapURI(r *listenertest.Running, scheme, path string) string {
	return scheme + "://" + r.Addr + path
}

// writeFile writes a test file and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawPeer speaks CoAP from its own UDP port with messages built by hand, for what
// libcoap cannot be made to send (a block-wise upload without Size1, many peers).
type rawPeer struct {
	c   *net.UDPConn
	mid uint16
}

func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{c: c, mid: uint16(time.Now().UnixNano())}
}

// block is a Block1 option value (RFC 7959 §2.2) for 1024-byte blocks.
func block(num uint32, more bool) uint32 {
	v := num<<4 | 6
	if more {
		v |= 8
	}
	return v
}

// request builds a confirmable request.
func (p *rawPeer) request(code codes.Code, path string, payload []byte, opts map[message.OptionID]uint32) []byte {
	p.mid++
	m := pool.NewMessage(context.Background())
	m.SetCode(code)
	m.SetType(message.Confirmable)
	m.SetMessageID(int32(p.mid))
	m.SetToken(message.Token{0x42, byte(p.mid >> 8), byte(p.mid)})
	if err := m.SetPath(path); err != nil {
		panic(err)
	}
	for id, v := range opts {
		m.SetOptionUint32(id, v)
	}
	if payload != nil {
		m.SetBody(bytes.NewReader(payload))
	}
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		panic(err)
	}
	return b
}

// do sends a confirmable request, retransmitting it each second, and returns the answer
// with its message id; it fails the test after 10 s without one.
func (p *rawPeer) do(t *testing.T, code codes.Code, path string, payload []byte, opts map[message.OptionID]uint32) *pool.Message {
	t.Helper()
	req := p.request(code, path, payload, opts)
	mid := p.mid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := p.c.Write(req); err != nil {
			t.Fatal(err)
		}
		if m := p.await(mid, time.Second); m != nil {
			return m
		}
	}
	t.Fatalf("no answer to %v %s from %v within 10 s", code, path, p.c.RemoteAddr())
	return nil
}

func (p *rawPeer) await(mid uint16, wait time.Duration) *pool.Message {
	buf := make([]byte, 64<<10)
	_ = p.c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := p.c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			continue // ICMP port unreachable and the like
		}
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err == nil && uint16(m.MessageID()) == mid {
			return m
		}
	}
}

func payloadOf(t *testing.T, m *pool.Message) string {
	t.Helper()
	b, err := m.ReadBody()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitUntil polls cond until it holds, failing the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
