package coap_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/linkops/linkops/listeners/coap"
	"github.com/linkops/linkops/listeners/listenertest"
)

// A body sent block-wise in 64-byte blocks arrives whole, byte for byte.
func TestBlockwiseArrivesIntact(t *testing.T) {
	body := make([]byte, 5000)
	for i := range body {
		body[i] = byte(rand.IntN(256))
	}
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	out, errOut := libcoap(t, notls, "-m", "post", "-b", "64", "-f", writeFile(t, "body", body), coapURI(r, "coap", "/fw/chunk"))
	if strings.Count(out, "c:2.31") < 5000/64 || !strings.Contains(out, "t:ACK c:2.04") {
		t.Fatalf("want 2.31 Continue per block, then 2.04; libcoap printed:\n%.2000s\n%s", out, errOut)
	}
	f := rec.WaitFrames(t, 1)
	if len(f) != 1 || f[0].Topic != "/fw/chunk" || !bytes.Equal(f[0].Payload, body) {
		t.Fatalf("got %d frames; first %q with %d bytes, want the %d bytes sent", len(f), f[0].Topic, len(f[0].Payload), len(body))
	}
}

// A body over MaxBodySize is refused 4.13 with Size1 and never reaches the handler.
func TestOversizeRefused(t *testing.T) {
	rec := listenertest.NewRecorder()
	r := serve(t, coap.Listener{}, plainSpec(), rec)
	out, errOut := libcoap(t, notls, "-m", "post", "-b", "1024", "-f", writeFile(t, "huge", make([]byte, 2<<20)), coapURI(r, "coap", "/huge"))
	if !strings.HasPrefix(errOut, "4.13 ") {
		t.Fatalf("want 4.13; libcoap printed %q", errOut)
	}
	// libcoap announces the size (Size1) in the first block: refused there, nothing
	// buffered.
	if n := strings.Count(out, "c:2.31"); n != 0 {
		t.Errorf("%d blocks were taken before the refusal", n)
	}
	r.WaitErrors(t, "oversize", 1)
	// The next request is served, and the oversized one never was.
	libcoap(t, notls, "-m", "post", "-e", "small", coapURI(r, "coap", "/small"))
	if f := rec.WaitFrames(t, 1); len(f) != 1 || f[0].Topic != "/small" {
		t.Fatalf("frames = %v", f)
	}
}

// A client that announces no Size1 is stopped at the block that passes the limit.
func TestOversizeWithoutSize1(t *testing.T) {
	rec := listenertest.NewRecorder()
	r := serve(t, coap.WithLimits(coap.Limits{Body: 4096}), plainSpec(), rec)
	p := dialRaw(t, r.Addr)
	chunk := bytes.Repeat([]byte("b"), 1024)
	for num := range uint32(4) {
		m := p.do(t, codes.POST, "/up", chunk, map[message.OptionID]uint32{message.Block1: block(num, true)})
		if m.Code() != codes.Continue {
			t.Fatalf("block %d: %v, want 2.31 Continue", num, m.Code())
		}
	}
	m := p.do(t, codes.POST, "/up", chunk, map[message.OptionID]uint32{message.Block1: block(4, true)})
	size1, err := m.GetOptionUint32(message.Size1)
	if m.Code() != codes.RequestEntityTooLarge || err != nil || size1 != 4096 {
		t.Fatalf("block 4 (bytes 4096-5119): %v Size1 %d (%v), want 4.13 with Size1 4096", m.Code(), size1, err)
	}
	if f := rec.Frames(); len(f) != 0 {
		t.Fatalf("the handler got %d frames", len(f))
	}
}

// Only MaxUploads block-wise uploads are reassembled at once; another waits with 5.03
// until one finishes.
func TestUploadLimit(t *testing.T) {
	rec := listenertest.NewRecorder()
	r := serve(t, coap.WithLimits(coap.Limits{Uploads: 1}), plainSpec(), rec)
	a, b := dialRaw(t, r.Addr), dialRaw(t, r.Addr)
	chunk := bytes.Repeat([]byte("a"), 1024)
	first := map[message.OptionID]uint32{message.Block1: block(0, true)}
	if m := a.do(t, codes.POST, "/a", chunk, first); m.Code() != codes.Continue {
		t.Fatalf("a, block 0: %v", m.Code())
	}
	m := b.do(t, codes.POST, "/b", chunk, first)
	if age, _ := m.GetOptionUint32(message.MaxAge); m.Code() != codes.ServiceUnavailable || age != coap.RetryAfter {
		t.Fatalf("b, block 0 while a uploads: %v Max-Age %d, want 5.03 with Max-Age %d", m.Code(), age, coap.RetryAfter)
	}
	if m := a.do(t, codes.POST, "/a", []byte("end"), map[message.OptionID]uint32{message.Block1: block(1, false)}); m.Code() != codes.Changed {
		t.Fatalf("a, last block: %v", m.Code())
	}
	if f := rec.WaitFrames(t, 1)[0]; f.Topic != "/a" || len(f.Payload) != 1027 {
		t.Fatalf("frame %q of %d bytes", f.Topic, len(f.Payload))
	}
	if m := b.do(t, codes.POST, "/b", chunk, first); m.Code() != codes.Continue {
		t.Fatalf("b, block 0 after a finished: %v", m.Code())
	}
	r.WaitErrors(t, "busy", 1)
}

// At most MaxPeers peers are kept: a datagram from one more is dropped, and once the
// kept ones are idle for PeerIdleTimeout they are forgotten, with their goroutines, and
// the newcomer is served.
func TestPeerLimitAndIdleExpiry(t *testing.T) {
	const kept = 20
	base := runtime.NumGoroutine()
	rec := listenertest.NewRecorder()
	r := serve(t, coap.WithLimits(coap.Limits{Peers: kept, Idle: 300 * time.Millisecond}), plainSpec(), rec)
	peers := make([]*rawPeer, kept)
	for i := range peers {
		peers[i] = dialRaw(t, r.Addr)
		if m := peers[i].do(t, codes.POST, fmt.Sprintf("/p%d", i), []byte("x"), nil); m.Code() != codes.Changed {
			t.Fatalf("peer %d: %v", i, m.Code())
		}
	}
	late := dialRaw(t, r.Addr)
	req := late.request(codes.POST, "/late", []byte("x"), nil)
	if _, err := late.c.Write(req); err != nil {
		t.Fatal(err)
	}
	r.WaitErrors(t, "peer_limit", 1)
	if n := r.Env.Connections(); n > kept {
		t.Fatalf("%d peers kept, limit %d", n, kept)
	}
	// Silent now: every peer expires, and its goroutine with it.
	waitUntil(t, "idle peers expire", func() bool { return r.Env.Connections() == 0 })
	listenertest.Goroutines(t, base, 8)
	if m := late.do(t, codes.POST, "/late", []byte("x"), nil); m.Code() != codes.Changed {
		t.Fatalf("the late peer after expiry: %v", m.Code())
	}
	late1 := 0
	for _, f := range rec.Frames() {
		if f.Topic == "/late" {
			late1++
		}
	}
	if late1 != 1 {
		t.Fatalf("/late handled %d times, want once: the datagram over the peer limit must be dropped", late1)
	}
}
