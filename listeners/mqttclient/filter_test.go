package mqttclient

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// publish encodes a QoS 0 PUBLISH as a broker sends it.
func publish(t testing.TB, topic string, payload []byte) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Payload = topic, payload
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAll reads everything the filter passes, through paho's own decoder.
func readAll(r io.Reader) (pubs []*packets.PublishPacket, err error) {
	for {
		cp, err := packets.ReadPacket(r)
		if err != nil {
			return pubs, err
		}
		if p, ok := cp.(*packets.PublishPacket); ok {
			pubs = append(pubs, p)
		}
	}
}

func TestFilterSkipsOversizePublish(t *testing.T) {
	small := publish(t, "a/b", []byte("hello"))
	big := publish(t, "a/big", bytes.Repeat([]byte{0xee}, 5000))
	ping := []byte{0xd0, 0x00} // PINGRESP
	stream := bytes.Join([][]byte{small, big, ping, big, small}, nil)

	var drops []string
	f := newPacketFilter(iotest.OneByteReader(bytes.NewReader(stream)), 100, func(r string) { drops = append(drops, r) })
	pubs, err := readAll(f)
	if err != io.EOF {
		t.Fatalf("read ended with %v, want io.EOF", err)
	}
	if len(pubs) != 2 || pubs[0].TopicName != "a/b" || string(pubs[1].Payload) != "hello" {
		t.Fatalf("passed %v, want the two small publishes", pubs)
	}
	if len(drops) != 2 || drops[0] != "oversize" {
		t.Fatalf("drops = %v, want 2 oversize", drops)
	}
}

// Every subscription is QoS 0: a QoS 1 or 2 PUBLISH breaks the protocol and is skipped.
func TestFilterSkipsQoSAboveZero(t *testing.T) {
	qos2 := []byte{0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'p'}
	qos1 := []byte{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x02, 'p'}
	var drops []string
	f := newPacketFilter(bytes.NewReader(bytes.Join([][]byte{qos2, qos1, publish(t, "t", []byte("q0"))}, nil)), 8192,
		func(r string) { drops = append(drops, r) })
	pubs, _ := readAll(f)
	if len(pubs) != 1 || string(pubs[0].Payload) != "q0" || len(drops) != 2 || drops[0] != "garbage" {
		t.Fatalf("passed %v, dropped %v; want only the QoS 0 publish, two garbage", pubs, drops)
	}
}

func TestFilterLimitIsThePacketSize(t *testing.T) {
	p := publish(t, "t", bytes.Repeat([]byte{1}, 90))
	for _, tc := range []struct {
		max  int
		want int
	}{{len(p), 1}, {len(p) - 1, 0}} {
		f := newPacketFilter(bytes.NewReader(p), tc.max, func(string) {})
		pubs, _ := readAll(f)
		if len(pubs) != tc.want {
			t.Errorf("a %d-byte packet with max %d: %d passed, want %d", len(p), tc.max, len(pubs), tc.want)
		}
	}
}

// zeros is an endless stream of zero bytes: a huge announced PUBLISH body.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

// A PUBLISH announcing 200 MiB is skipped without being held: what follows it still
// arrives, and the filter read it through its 4 KiB buffer.
func TestFilterSkipsHugePublishWithoutBuffering(t *testing.T) {
	const size = 200 << 20
	hdr := []byte{0x30, 0x80 | (size & 0x7f), 0x80 | (size >> 7 & 0x7f), 0x80 | (size >> 14 & 0x7f), size >> 21}
	z := &zeros{}
	body := io.LimitReader(z, size)
	after := publish(t, "after", []byte("x"))
	f := newPacketFilter(io.MultiReader(bytes.NewReader(hdr), body, bytes.NewReader(after)), 8192, func(string) {})
	cp, err := packets.ReadPacket(f)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cp.(*packets.PublishPacket); !ok || p.TopicName != "after" {
		t.Fatalf("got %v, want the publish after the huge one", cp)
	}
	if z.n != size {
		t.Fatalf("skipped %d bytes, want %d", z.n, size)
	}
}

func TestFilterRefusesMalformedHeaders(t *testing.T) {
	for name, in := range map[string][]byte{
		"5-byte length":         {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge SUBACK":           {0x90, 0x80, 0x80, 0x04},
		"SUBACK for more codes": {0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00},
	} {
		var drops []string
		f := newPacketFilter(bytes.NewReader(in), 8192, func(r string) { drops = append(drops, r) })
		f.subacks = 2
		_, err := io.ReadAll(f)
		if err == nil || len(drops) != 1 || drops[0] != "garbage" {
			t.Errorf("%s: err %v, drops %v; want an error and one garbage", name, err, drops)
		}
	}
	f := newPacketFilter(bytes.NewReader([]byte{0x30, 0x05, 0x00}), 8192, func(string) {})
	if _, err := io.ReadAll(f); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a truncated packet ends with %v, want io.ErrUnexpectedEOF", err)
	}
}

// reference is what the filter must pass of in: whole packets in order, leaving out
// PUBLISH packets that are oversized or above QoS 0, up to the first malformed header;
// a packet cut short by the end of input passes as far as it goes.
func reference(in []byte, max, subacks int) (out []byte, dropped int) {
	for len(in) > 0 {
		n, length := 1, 0
		for mult := 1; ; mult *= 128 {
			if n >= len(in) || n == 5 {
				return out, dropped
			}
			b := in[n]
			n++
			length += int(b&0x7f) * mult
			if b&0x80 == 0 {
				break
			}
		}
		typ, size := in[0]>>4, n+length
		end := min(size, len(in))
		switch {
		case typ == packetPublish && size > max:
			dropped++
			in = in[end:]
			continue
		case typ == packetPublish && in[0]&0x06 != 0:
			in = in[end:]
			continue
		case typ != packetPublish && length > maxControlPacket, typ == packetSuback && length > 2+subacks:
			return out, dropped
		}
		out = append(out, in[:end]...)
		in = in[end:]
	}
	return out, dropped
}

func FuzzFilter(f *testing.F) {
	f.Add(publish(f, "a/b", []byte("hello")), uint16(100), uint8(1))
	f.Add(append(publish(f, "x", bytes.Repeat([]byte{7}, 300)), publish(f, "y", nil)...), uint16(64), uint8(3))
	f.Add([]byte{0x90, 0x03, 0x00, 0x01, 0x00, 0xd0, 0x00, 0x20, 0x02, 0x00, 0x00}, uint16(64), uint8(2))
	f.Add([]byte{0x32, 0x07, 0x00, 0x01, 't', 0x00, 0x01, 'p', 'q'}, uint16(8192), uint8(0))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, uint16(8192), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, max uint16, chunk uint8) {
		subacks := int(chunk % 4)
		want, wantDrops := reference(in, int(max), subacks)
		drops := 0
		fl := newPacketFilter(iotest.HalfReader(bytes.NewReader(in)), int(max), func(r string) {
			if r == "oversize" {
				drops++
			}
		})
		fl.subacks = subacks
		got, _ := io.ReadAll(fl)
		if !bytes.Equal(got, want) || drops != wantDrops {
			t.Fatalf("passed %x (%d oversize), want %x (%d)", got, drops, want, wantDrops)
		}
		// What passes is what paho decodes: it must not panic on it, nor be asked to
		// allocate more than max for a PUBLISH.
		cut := newPacketFilter(bytes.NewReader(in), int(max), func(string) {})
		cut.subacks = subacks
		pubs, _ := readAll(cut)
		for _, p := range pubs {
			if len(p.Payload) > int(max) {
				t.Fatalf("a %d-byte payload passed a %d-byte limit", len(p.Payload), max)
			}
		}
	})
}
