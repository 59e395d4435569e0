package coap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/linkops/linkops/listeners/coap"
	"github.com/linkops/linkops/listeners/listenertest"
)

// garbage is datagrams no CoAP client should send.
func garbage() [][]byte {
	p := &rawPeer{mid: 7}
	seeds := [][]byte{
		{},
		{0x40},
		{0x00, 0x01, 0x00, 0x01},          // version 0
		{0xc0, 0x01, 0x00, 0x01},          // version 3
		{0x4f, 0x01, 0x00, 0x01, 1, 2, 3}, // token length 15
		{0x40, 0x02, 0x00, 0x01, 0xf0},    // option delta 15 (reserved)
		{0x40, 0x02, 0x00, 0x01, 0xbe, 0xff, 0xff},          // option longer than the datagram
		{0x40, 0x02, 0x00, 0x01, 0xff},                      // payload marker, no payload
		{0x60, 0x45, 0x00, 0x01},                            // a stray 2.05 ACK
		{0x40, 0x45, 0x00, 0x02, 0xff, 'x'},                 // a stray confirmable 2.05
		{0x70, 0x00, 0x00, 0x03},                            // RST
		{0x40, 0x00, 0x00, 0x04},                            // ping
		{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, // a DTLS record
		p.request(codes.POST, "/a", []byte("x"), map[message.OptionID]uint32{message.Block1: block(1<<20-1, true)}),
		p.request(codes.POST, "/a", []byte("x"), map[message.OptionID]uint32{message.Block1: 7 | 8}), // BERT on UDP
		p.request(codes.POST, "/a", []byte("x"), map[message.OptionID]uint32{message.Block1: block(3, true)}),
		p.request(codes.POST, "/a", []byte("x"), map[message.OptionID]uint32{message.Size1: 0xffffffff}),
		p.request(codes.Code(31), "/a", nil, nil), // an unassigned method
		withPath(p.request(codes.GET, "/a", nil, nil), "a/b"),
		withPath(p.request(codes.GET, "/a", nil, nil), "\xff\xfe"),
		bytes.Repeat([]byte{0x44}, 65000),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 0 {
			b[0] = 0x40 | b[0]&0x0f // version 1, so that it is parsed further
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// withPath replaces the single Uri-Path segment of a request built by rawPeer.request.
func withPath(datagram []byte, segment string) []byte {
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
		panic(err)
	}
	m.SetOptionBytes(message.URIPath, []byte(segment))
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		panic(err)
	}
	return b
}

// alive sends a datagram and then a request from the same peer, and waits for the
// request's answer: the peer's messages are handled in order, so the datagram has been
// too. The request never reuses the datagram's message id; a later one may, in a long
// fuzzing run, and then gets the cached answer to that message (RFC 7252 §4.5), so only
// a strict check asks for 2.05.
func alive(t *testing.T, p *rawPeer, datagram []byte, strict bool) {
	t.Helper()
	if _, err := p.c.Write(datagram); err != nil {
		t.Fatal(err)
	}
	if len(datagram) >= 4 && binary.BigEndian.Uint16(datagram[2:]) == p.mid+1 {
		p.mid++
	}
	if m := p.do(t, codes.GET, "/alive", nil, nil); strict && m.Code() != codes.Content {
		t.Fatalf("after %x: %v", datagram[:min(len(datagram), 32)], m.Code())
	}
}

// Garbage costs nothing but itself: no panic, the server answers the next request, and
// the garbage is counted.
func TestGarbage(t *testing.T) {
	r := serve(t, coap.Listener{}, plainSpec(), listenertest.NewRecorder())
	for _, g := range garbage() {
		alive(t, dialRaw(t, r.Addr), g, true)
	}
	r.WaitErrors(t, "garbage", 1)
}

func FuzzDatagram(f *testing.F) {
	for _, g := range garbage() {
		f.Add(g)
	}
	r := listenertest.Serve(f, coap.Listener{}, plainSpec(), listenertest.NewRecorder())
	p := dialRaw(f, r.Addr)
	f.Fuzz(func(t *testing.T, datagram []byte) {
		if len(datagram) > 65000 {
			return // not one UDP datagram
		}
		alive(t, p, datagram, false)
	})
}

// inspect never reports a negative size, nor a first block outside a transfer.
func FuzzInspect(f *testing.F) {
	for _, g := range garbage() {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, datagram []byte) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
			return
		}
		block, first, more, size := coap.Inspect(m)
		if size < 0 || (first || more) && !block {
			t.Fatalf("inspect = block %v first %v more %v size %d", block, first, more, size)
		}
	})
}
