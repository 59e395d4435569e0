package udp_test

import (
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"

	"github.com/linkops/linkops/listeners/udp"
)

func TestIsClientHello(t *testing.T) {
	hello := clientHello(t)
	if !udp.IsClientHello(hello) {
		t.Fatalf("a real ClientHello is not recognised: %x", hello)
	}
	mutate := func(i int, v byte) []byte {
		b := append([]byte(nil), hello...)
		b[i] = v
		return b
	}
	for name, b := range map[string][]byte{
		"empty":                nil,
		"record header only":   hello[:13],
		"half":                 hello[:len(hello)/2],
		"application data":     mutate(0, 23),
		"TLS, not DTLS":        mutate(1, 3),
		"unknown DTLS version": mutate(2, 0xfc),
		"epoch 1":              mutate(4, 1),
		"ServerHello":          mutate(13, 2),
		"later fragment":       mutate(21, 1),
		"record too long":      mutate(11, 0xff),
	} {
		if udp.IsClientHello(b) {
			t.Errorf("%s: taken for a ClientHello", name)
		}
	}
}

// FuzzIsClientHello: the filter never panics, and whatever it lets through is, for
// pion/dtls's own parsers, an epoch-0 handshake record starting a ClientHello.
func FuzzIsClientHello(f *testing.F) {
	hello := clientHello(f)
	f.Add(hello)
	f.Add(hello[:len(hello)/2])
	f.Add([]byte{})
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(append([]byte{23, 0xfe, 0xfd, 0, 1}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !udp.IsClientHello(b) {
			return
		}
		recs, err := recordlayer.UnpackDatagram(b)
		if err != nil || len(recs) == 0 {
			// Only the first record is checked; the rest of the datagram is pion's.
			recs = [][]byte{b[:13+(int(b[11])<<8|int(b[12]))]}
		}
		var rh recordlayer.Header
		if err := rh.Unmarshal(recs[0]); err != nil {
			t.Fatalf("accepted, but pion's record header says %v", err)
		}
		if rh.ContentType != protocol.ContentTypeHandshake || rh.Epoch != 0 {
			t.Fatalf("accepted a record of type %v, epoch %d", rh.ContentType, rh.Epoch)
		}
		var hh handshake.Header
		if err := hh.Unmarshal(recs[0][13:]); err != nil {
			t.Fatalf("accepted, but pion's handshake header says %v", err)
		}
		if hh.Type != handshake.TypeClientHello || hh.FragmentOffset != 0 || hh.FragmentLength > hh.Length ||
			int(hh.FragmentLength) > len(recs[0])-13-12 {
			t.Fatalf("accepted handshake header %+v in a %d-byte record", hh, len(recs[0]))
		}
	})
}

// FuzzHasServerHello: the scan of what pion writes never panics, and a ServerHello it
// finds is one for pion's parsers too: an epoch-0 handshake record of a whole-record
// prefix of the datagram.
func FuzzHasServerHello(f *testing.F) {
	record := func(typ byte, epoch byte, body ...byte) []byte {
		return append([]byte{typ, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1, 0, byte(len(body))}, body...)
	}
	serverHello := record(22, 0, append([]byte{2, 0, 0, 38, 0, 1, 0, 0, 0, 0, 0, 38}, make([]byte, 38)...)...)
	f.Add(serverHello)
	f.Add(append(record(22, 0, 3, 0, 0, 0), serverHello...)) // after another record
	f.Add(record(22, 1, 2))                                  // encrypted: not one
	f.Add(record(20, 0, 1))
	f.Add(serverHello[:20])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if !udp.HasServerHello(b) {
			return
		}
		for k := len(b); k > 0; k-- {
			recs, err := recordlayer.UnpackDatagram(b[:k])
			if err != nil {
				continue
			}
			for _, r := range recs {
				body := append(append([]byte(nil), r[13:]...), make([]byte, 12)...) // the type byte is what counts
				var hh handshake.Header
				if r[0] == 22 && r[3] == 0 && r[4] == 0 && len(r) > 13 && hh.Unmarshal(body) == nil &&
					hh.Type == handshake.TypeServerHello {
					return
				}
			}
		}
		t.Fatalf("found a ServerHello in %x that pion's parsers do not see", b)
	})
}
