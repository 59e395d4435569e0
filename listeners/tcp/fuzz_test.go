package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/resource"
)

// The fuzz targets feed arbitrary streams, cut by an arbitrary seed, and compare each
// framer with an oracle written another way; cutting must never change the messages.

// sizesOf turns a seed into chunk sizes from 1 to 17.
func sizesOf(seed uint64) []int {
	sizes := make([]int, 8)
	for i := range sizes {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		sizes[i] = int(seed%17) + 1
	}
	return sizes
}

// checkFramer feeds stream whole and in chunks: both must give want (the oracle's
// messages) and fail alike.
func checkFramer(t *testing.T, fr *Framing, stream []byte, seed uint64, want [][]byte, wantErr error) {
	t.Helper()
	for _, sizes := range [][]int{{len(stream) + 1}, sizesOf(seed)} {
		// The oracle scripts never loop: a sandbox timeout is the machine being busy, so
		// it is tried again (feedPatiently), never skipped.
		got, err := feedPatiently(t, fr, stream, sizes)
		if wantErr == nil && err != nil || wantErr != nil && !errors.Is(err, wantErr) {
			t.Fatalf("chunks %v: error %v, want %v", sizes, err, wantErr)
		}
		if wantErr == nil && fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("chunks %v: %q, want %q", sizes, got, want)
		}
	}
}

func FuzzDirect(f *testing.F) {
	f.Add([]byte("hello"), uint64(1))
	f.Add([]byte{}, uint64(0))
	fr := mustFraming(f, resource.NetworkConfig{ParserType: resource.ParserDirect})
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		sizes := sizesOf(seed)
		got, err := feed(fr, stream, sizes)
		if err != nil {
			t.Fatal(err)
		}
		// Each read is one message: the chunks themselves.
		var want [][]byte
		for i, rest := 0, stream; len(rest) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(rest))
			want, rest = append(want, rest[:n]), rest[n:]
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("DIRECT = %q, want the reads %q", got, want)
		}
	})
}

func FuzzDelimited(f *testing.F) {
	f.Add([]byte("a\r\nbc\r\n\r\nd"), `\r\n`, uint64(3))
	f.Add([]byte("~~~x~~~~y~"), "0x7e7e", uint64(9))
	f.Add([]byte{0, 0, 1, 0}, `\0`, uint64(2))
	f.Fuzz(func(t *testing.T, stream []byte, delimited string, seed uint64) {
		delim, err := resource.ParseDelimiter(delimited)
		if err != nil {
			return
		}
		fr := mustFraming(t, parser(resource.ParserDelimited, resource.ParserConfig{Delimited: delimited}))
		// The oracle: bytes.Split, without the empty parts and the unterminated tail.
		var want [][]byte
		parts := bytes.Split(stream, delim)
		for _, p := range parts[:len(parts)-1] {
			if len(p) > 0 {
				want = append(want, p)
			}
		}
		checkFramer(t, fr, stream, seed, want, nil)
	})
}

func FuzzFixedLength(f *testing.F) {
	f.Add([]byte("abcdefgh"), uint16(3), uint64(5))
	f.Add([]byte("x"), uint16(1), uint64(0))
	f.Fuzz(func(t *testing.T, stream []byte, size uint16, seed uint64) {
		if size == 0 {
			return
		}
		fr := mustFraming(t, parser(resource.ParserFixedLength, resource.ParserConfig{Size: int(size)}))
		var want [][]byte
		for i := 0; i+int(size) <= len(stream); i += int(size) {
			want = append(want, stream[i:i+int(size)])
		}
		checkFramer(t, fr, stream, seed, want, nil)
	})
}

// lengthOracle parses LENGTH_FIELD frames with encoding/binary.
func lengthOracle(stream []byte, offset, length int, little bool) ([][]byte, error) {
	var out [][]byte
	for {
		if len(stream) < offset+length {
			return out, nil
		}
		var field [8]byte
		var n uint64
		if little {
			copy(field[:], stream[offset:offset+length])
			n = binary.LittleEndian.Uint64(field[:])
		} else {
			copy(field[8-length:], stream[offset:offset+length])
			n = binary.BigEndian.Uint64(field[:])
		}
		if n > MaxBuffered {
			return out, listeners.ErrTooLarge
		}
		end := offset + length + int(n)
		if len(stream) < end {
			return out, nil
		}
		out, stream = append(out, stream[:end]), stream[end:]
	}
}

func FuzzLengthField(f *testing.F) {
	for _, length := range []uint8{1, 2, 3, 4, 8} {
		f.Add(lengthFrame(1, int(length), length%2 == 0, []byte("body")), uint8(1), length, length%2 == 0, uint64(length))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(0), uint8(4), false, uint64(1))
	f.Fuzz(func(t *testing.T, stream []byte, offset, length uint8, little bool, seed uint64) {
		switch length {
		case 1, 2, 3, 4, 8:
		default:
			return
		}
		fr := mustFraming(t, parser(resource.ParserLengthField, resource.ParserConfig{Offset: int(offset), Length: int(length), Little: little}))
		want, wantErr := lengthOracle(stream, int(offset), int(length), little)
		checkFramer(t, fr, stream, seed, want, wantErr)
		if wantErr != nil {
			// The messages before the bad header are delivered, whole or in chunks.
			if got, _ := feed(fr, stream, []int{len(stream)}); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
				t.Fatalf("before the oversize header: %q, want %q", got, want)
			}
		}
	})
}

// oneByteLength is LENGTH_FIELD offset 0 length 1, written as a SCRIPT parser; the fuzzer
// checks the two agree, and treats a 0xff header as garbage.
const oneByteLength = `
function split(bytes) {
  if (bytes.length < 1) return 0;
  if (bytes[0] === 0xff) return -1;
  var n = 1 + bytes[0];
  return bytes.length < n ? 0 : n;
}`

func FuzzScript(f *testing.F) {
	f.Add([]byte("\x03abc\x00\x01z\x02"), uint64(7))
	f.Add([]byte("\x01a\xffjunk"), uint64(1))
	script := mustFraming(f, parser(resource.ParserScript, resource.ParserConfig{Script: oneByteLength}))
	lf := mustFraming(f, parser(resource.ParserLengthField, resource.ParserConfig{Length: 1}))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		good, wantErr := stream, error(nil)
		// The LENGTH_FIELD oracle reads up to the first frame that starts with 0xff.
		for off := 0; off < len(stream); {
			if stream[off] == 0xff {
				good, wantErr = stream[:off], ErrGarbage
				break
			}
			off += 1 + int(stream[off])
		}
		want, err := lengthOracle(good, 0, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		checkFramer(t, script, stream, seed, want, wantErr)
		if wantErr == nil {
			checkFramer(t, lf, stream, seed, want, nil)
		}
	})
}
