package tcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
)

func parser(typ string, pc resource.ParserConfig) resource.NetworkConfig {
	return resource.NetworkConfig{ParserType: typ, ParserConfiguration: &pc}
}

func mustFraming(t testing.TB, cfg resource.NetworkConfig) *Framing {
	t.Helper()
	fr, err := NewFraming(cfg)
	if err != nil {
		t.Fatalf("NewFraming: %v", err)
	}
	return fr
}

// feed runs a stream through a new framer in chunks of the given sizes (cycled) and
// returns copies of the messages, and the first error.
func feed(fr *Framing, stream []byte, sizes []int) ([][]byte, error) {
	f := fr.NewFramer()
	var out [][]byte
	emit := func(m []byte) error { out = append(out, append([]byte(nil), m...)); return nil }
	for i := 0; len(stream) > 0; i++ {
		n := min(max(sizes[i%len(sizes)], 1), len(stream))
		if err := f.Feed(context.Background(), stream[:n], emit); err != nil {
			return out, err
		}
		stream = stream[n:]
	}
	return out, nil
}

// feedPatiently is feed, tried again when a script that does not loop ran out of time:
// the sandbox's limit is wall-clock time, which a machine this busy can exceed on any call.
func feedPatiently(t testing.TB, fr *Framing, stream []byte, sizes []int) ([][]byte, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		got, err := feed(fr, stream, sizes)
		if !errors.Is(err, protocol.ErrTimeout) || attempt == 5 {
			return got, err
		}
		t.Logf("attempt %d: %v; trying again", attempt, err)
	}
}

// lengthFrame encodes one LENGTH_FIELD frame with encoding/binary, independently of the
// framer's decoding: offset filler bytes, the length of body, body.
func lengthFrame(offset, length int, little bool, body []byte) []byte {
	head := bytes.Repeat([]byte{0xaa}, offset)
	var field [8]byte
	order := binary.ByteOrder(binary.BigEndian)
	if little {
		order = binary.LittleEndian
	}
	order.PutUint64(field[:], uint64(len(body)))
	if little {
		head = append(head, field[:length]...)
	} else {
		head = append(head, field[8-length:]...)
	}
	return append(head, body...)
}

// chunkings are the ways every stream is cut: whole, byte by byte, odd sizes that put
// several frames in one read and one frame across reads.
var chunkings = [][]int{{1 << 20}, {1}, {2, 3}, {5, 1, 7, 2}, {13, 4, 64, 1, 3}}

// FramingCase is a stream and the messages every parser must cut it into, however it is
// chunked; the socket tests (package tcp_test) send the same streams.
type FramingCase struct {
	Name   string
	Cfg    resource.NetworkConfig
	Stream []byte
	Want   []string
}

// FramingCases covers every parser, and LENGTH_FIELD with each length, both byte orders
// and an offset.
func FramingCases() []FramingCase {
	cases := []FramingCase{
		{"DELIMITED crlf", parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\r\n`}),
			[]byte("a\r\nbc\r\n\r\n\r\ndef\r\nincomplete\r"), []string{"a", "bc", "def"}},
		{"DELIMITED hex, overlapping", parser(resource.ParserDelimited, resource.ParserConfig{Delimited: "0x7e7e"}),
			[]byte("a~b~~c~~~~d~~~e~~f~"), []string{"a~b", "c", "d", "~e"}},
		{"DELIMITED one byte", parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\0`}),
			[]byte("\x00\x00x\x00yz\x00"), []string{"x", "yz"}},
		{"FIXED_LENGTH 3", parser(resource.ParserFixedLength, resource.ParserConfig{Size: 3}),
			[]byte("abcdefgh"), []string{"abc", "def"}},
		{"FIXED_LENGTH 1", parser(resource.ParserFixedLength, resource.ParserConfig{Size: 1}),
			[]byte("xyz"), []string{"x", "y", "z"}},
		{"SCRIPT lines", parser(resource.ParserScript, resource.ParserConfig{Script: `
function split(bytes) { var i = bytes.indexOf(10); return i < 0 ? 0 : i + 1; }`}),
			[]byte("one\ntwo\n\nthree"), []string{"one\n", "two\n", "\n"}},
		{"SCRIPT lines, one longer than split is shown first", parser(resource.ParserScript, resource.ParserConfig{Script: `
function split(bytes) { var i = bytes.indexOf(10); return i < 0 ? 0 : i + 1; }`}),
			[]byte("a\n" + strings.Repeat("L", 3*minSplitWindow) + "\nb\n"), []string{"a\n", strings.Repeat("L", 3*minSplitWindow) + "\n", "b\n"}},
	}
	for _, length := range []int{1, 2, 3, 4, 8} {
		for _, little := range []bool{false, true} {
			for _, offset := range []int{0, 2} {
				var stream []byte
				var want []string
				for _, body := range []string{"hello", "", "x", strings.Repeat("z", 200)} {
					fr := lengthFrame(offset, length, little, []byte(body))
					stream = append(stream, fr...)
					want = append(want, string(fr))
				}
				stream = append(stream, lengthFrame(offset, length, little, []byte("truncated"))[:offset+length+3]...)
				cases = append(cases, FramingCase{fmt.Sprintf("LENGTH_FIELD length %d little %v offset %d", length, little, offset),
					parser(resource.ParserLengthField, resource.ParserConfig{Offset: offset, Length: length, Little: little}), stream, want})
			}
		}
	}
	return cases
}

func TestFramersSplitEveryChunkingExactly(t *testing.T) {
	for _, tt := range FramingCases() {
		t.Run(tt.Name, func(t *testing.T) {
			fr := mustFraming(t, tt.Cfg)
			for _, sizes := range chunkings {
				got, err := feedPatiently(t, fr, tt.Stream, sizes)
				if err != nil {
					t.Fatalf("chunks %v: %v", sizes, err)
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.Want) {
					t.Fatalf("chunks %v: messages %q, want %q", sizes, got, tt.Want)
				}
			}
		})
	}
}

// Byte order written out by hand, so that encoder and decoder cannot agree on a mistake.
func TestLengthFieldByteOrder(t *testing.T) {
	for _, tt := range []struct {
		length int
		little bool
		head   []byte
	}{
		{2, false, []byte{0x00, 0x02}}, {2, true, []byte{0x02, 0x00}},
		{3, false, []byte{0, 0, 2}}, {3, true, []byte{2, 0, 0}},
		{4, false, []byte{0, 0, 0, 2}}, {4, true, []byte{2, 0, 0, 0}},
		{8, false, []byte{0, 0, 0, 0, 0, 0, 0, 2}}, {8, true, []byte{2, 0, 0, 0, 0, 0, 0, 0}},
	} {
		fr := mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Length: tt.length, Little: tt.little}))
		frame := append(append([]byte(nil), tt.head...), 'o', 'k')
		got, err := feed(fr, append(frame, frame...), []int{1 << 20})
		if err != nil || len(got) != 2 || !bytes.Equal(got[0], frame) {
			t.Errorf("length %d little %v: %q, %v; want two frames %q", tt.length, tt.little, got, err, frame)
		}
	}
	// 0x0100 is 256 big-endian but 1 little-endian.
	fr := mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Length: 2, Little: true}))
	if got, _ := feed(fr, []byte{1, 0, 'x'}, []int{3}); len(got) != 1 || string(got[0]) != "\x01\x00x" {
		t.Errorf("little-endian 0x0100: %q", got)
	}
}

func TestDirectEachReadIsOneMessage(t *testing.T) {
	fr := mustFraming(t, resource.NetworkConfig{}) // DIRECT is the default
	got, err := feed(fr, []byte("abcdefg"), []int{3, 1})
	if err != nil || fmt.Sprintf("%q", got) != `["abc" "d" "efg"]` {
		t.Fatalf("DIRECT = %q, %v", got, err)
	}
	if err := fr.NewFramer().Feed(context.Background(), nil, func([]byte) error { t.Fatal("empty read emitted"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestOversizeClosesAndMemoryStaysBounded(t *testing.T) {
	delimited := mustFraming(t, parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\r\n`}))
	big := bytes.Repeat([]byte{'x'}, MaxBuffered)
	// A message of exactly MaxBuffered bytes passes, arriving in small reads, and its
	// buffer is given back once it is done.
	f := delimited.NewFramer()
	var sizes []int
	emit := func(m []byte) error { sizes = append(sizes, len(m)); return nil }
	for i := 0; i < len(big); i += 4096 {
		if err := f.Feed(context.Background(), big[i:i+4096], emit); err != nil {
			t.Fatalf("at %d: %v", i, err)
		}
		if len(f.buf) > MaxBuffered+readSize {
			t.Fatalf("buffered %d bytes", len(f.buf))
		}
	}
	if err := f.Feed(context.Background(), []byte("\r"), emit); err != nil {
		t.Fatalf("a partial delimiter after %d bytes: %v", MaxBuffered, err)
	}
	if err := f.Feed(context.Background(), []byte("\nok"), emit); err != nil || len(sizes) != 1 || sizes[0] != MaxBuffered {
		t.Fatalf("messages %v, %v", sizes, err)
	}
	if cap(f.buf) > keepCap {
		t.Fatalf("kept a %d-byte buffer after the big message", cap(f.buf))
	}
	for _, tt := range []struct {
		name   string
		fr     *Framing
		stream []byte
		want   error
	}{
		{"DELIMITED one byte over", delimited, append(big, 'x', '\r'), listeners.ErrTooLarge},
		{"LENGTH_FIELD announces 1 MiB + 1", mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Length: 4})),
			[]byte{0, 0x10, 0, 1}, listeners.ErrTooLarge},
		{"LENGTH_FIELD announces 2^64 - 1", mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Length: 8})),
			bytes.Repeat([]byte{0xff}, 8), listeners.ErrTooLarge},
		{"SCRIPT finds nothing in its window", mustFraming(t, parser(resource.ParserScript, resource.ParserConfig{Script: "function split() { return 0 }"})),
			make([]byte, protocol.MaxSplitBytes), listeners.ErrTooLarge},
		{"SCRIPT says garbage", mustFraming(t, parser(resource.ParserScript, resource.ParserConfig{Script: "function split() { return -1 }"})),
			[]byte{1}, ErrGarbage},
		{"SCRIPT loops", mustFraming(t, parser(resource.ParserScript, resource.ParserConfig{Script: "function split() { for (;;) {} }"})),
			[]byte{1}, protocol.ErrTimeout},
		{"SCRIPT throws", mustFraming(t, parser(resource.ParserScript, resource.ParserConfig{Script: "function split() { throw 1 }"})),
			[]byte{1}, protocol.ErrException},
	} {
		for _, sizes := range [][]int{{1 << 21}, {65536}} {
			run := feedPatiently
			if tt.want == protocol.ErrTimeout {
				run = func(_ testing.TB, fr *Framing, stream []byte, sizes []int) ([][]byte, error) {
					return feed(fr, stream, sizes)
				}
			}
			if _, err := run(t, tt.fr, tt.stream, sizes); !errors.Is(err, tt.want) {
				t.Errorf("%s (chunks %v) = %v, want %v", tt.name, sizes, err, tt.want)
			}
		}
	}
	// A frame announcing exactly MaxBuffered passes.
	lf := mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Length: 4}))
	if got, err := feed(lf, lengthFrame(0, 4, false, big), []int{16 << 10}); err != nil || len(got) != 1 || len(got[0]) != MaxBuffered+4 {
		t.Fatalf("a %d-byte LENGTH_FIELD frame: %d messages, %v", MaxBuffered, len(got), err)
	}
}

// A read full of small messages shows split a small window per message, not the whole
// rest of the read each time: this split calls anything longer garbage.
func TestScriptIsShownASmallWindowFirst(t *testing.T) {
	fr := mustFraming(t, parser(resource.ParserScript, resource.ParserConfig{Script: `
function split(bytes) { return bytes.length > 256 ? -1 : bytes.length < 4 ? 0 : 4; }`}))
	stream := bytes.Repeat([]byte("msg."), 1000)
	got, err := feedPatiently(t, fr, stream, []int{len(stream)})
	if err != nil || len(got) != 1000 {
		t.Fatalf("%d messages, %v", len(got), err)
	}
}

func TestNewFramingRefusesWhatValidationWould(t *testing.T) {
	for _, cfg := range []resource.NetworkConfig{
		{ParserType: "SOMETHING"},
		{ParserType: resource.ParserDelimited},
		parser(resource.ParserDelimited, resource.ParserConfig{Delimited: "0xzz"}),
		parser(resource.ParserFixedLength, resource.ParserConfig{Size: 0}),
		parser(resource.ParserFixedLength, resource.ParserConfig{Size: resource.MaxFixedLength + 1}),
		parser(resource.ParserLengthField, resource.ParserConfig{Length: 5}),
		parser(resource.ParserLengthField, resource.ParserConfig{Length: 2, Offset: -1}),
		{ParserType: resource.ParserScript},
		parser(resource.ParserScript, resource.ParserConfig{Script: "function splat() {}"}),
		parser(resource.ParserScript, resource.ParserConfig{Script: "function split( {"}),
	} {
		if _, err := NewFraming(cfg); err == nil {
			t.Errorf("NewFraming(%s %+v) = nil error", cfg.ParserType, cfg.ParserConfiguration)
		}
	}
}
