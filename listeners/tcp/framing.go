package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
)

// MaxBuffered bounds what a connection may buffer without completing a message, and the
// N a LENGTH_FIELD header may announce (SPEC §4.3.1). A SCRIPT parser's bound is lower,
// protocol.MaxSplitBytes: split sees the buffered bytes as an array of numbers, which must
// fit in its time limit.
const MaxBuffered = 1 << 20

// keepCap is the buffer capacity a connection keeps between messages; a larger buffer,
// grown for one big message, is given back once it is mostly empty.
const keepCap = 64 << 10

// minSplitWindow is how many bytes a SCRIPT parser's split is shown first (see cutScript).
const minSplitWindow = 256

// Framing errors: each closes the connection.
var (
	// ErrGarbage: a SCRIPT parser's split called the buffered bytes garbage (returned -1).
	ErrGarbage = errors.New("garbage in the byte stream")
	// ErrScript: a SCRIPT parser's split failed (it threw, looped or returned something
	// other than a length); the protocol sentinel is wrapped as well.
	ErrScript = errors.New("the SCRIPT parser failed")
)

// Framing is a TCP_SERVER's parser (粘拆包规则), checked, and for SCRIPT compiled, once
// per listener. It is safe for concurrent use; each connection splits its stream with a
// Framer of its own.
type Framing struct {
	parser string
	delim  []byte
	size   int
	offset int
	length int
	little bool
	split  *protocol.Splitter
}

// NewFraming builds the framing cfg's parserType and parserConfiguration describe. Input
// is normally validated already (resource.NetworkConfig); anything else is an error here,
// never a panic.
func NewFraming(cfg resource.NetworkConfig) (*Framing, error) {
	pc := resource.ParserConfig{}
	if cfg.ParserConfiguration != nil {
		pc = *cfg.ParserConfiguration
	}
	fr := &Framing{parser: cfg.ParserType}
	switch cfg.ParserType {
	case "", resource.ParserDirect:
		fr.parser = resource.ParserDirect
	case resource.ParserDelimited:
		d, err := resource.ParseDelimiter(pc.Delimited)
		if err != nil {
			return nil, fmt.Errorf("parserConfiguration.delimited %w", err)
		}
		fr.delim = d
	case resource.ParserFixedLength:
		if pc.Size < 1 || pc.Size > resource.MaxFixedLength {
			return nil, fmt.Errorf("parserConfiguration.size must be from 1 to %d bytes, not %d", resource.MaxFixedLength, pc.Size)
		}
		fr.size = pc.Size
	case resource.ParserLengthField:
		switch pc.Length {
		case 1, 2, 3, 4, 8:
		default:
			return nil, fmt.Errorf("parserConfiguration.length must be 1, 2, 3, 4 or 8 bytes, not %d", pc.Length)
		}
		if pc.Offset < 0 || pc.Offset > 1024 {
			return nil, fmt.Errorf("parserConfiguration.offset must be from 0 to 1024 bytes, not %d", pc.Offset)
		}
		fr.offset, fr.length, fr.little = pc.Offset, pc.Length, pc.Little
	case resource.ParserScript:
		s, err := protocol.CompileSplitter(pc.Script)
		if err != nil {
			return nil, fmt.Errorf("parserConfiguration.script: %w", err)
		}
		fr.split = s
	default:
		return nil, fmt.Errorf("parserType %q is not a parser type", cfg.ParserType)
	}
	return fr, nil
}

// NewFramer returns a framer for one connection.
func (fr *Framing) NewFramer() *Framer { return &Framer{fr: fr} }

// Framer splits one connection's byte stream. It is not safe for concurrent use.
type Framer struct {
	fr *Framing
	// buf holds the bytes of a message not yet complete.
	buf []byte
	// scanned (DELIMITED) is how much of buf is known to hold no delimiter, so that a
	// message arriving in small reads is not searched again from its start each time.
	scanned int
	// window (SCRIPT) is how many bytes split was last shown without finding a message.
	window int
}

// Feed takes the bytes of one read and calls emit with each message they complete, in
// order. A message is valid only during emit (it may alias p or the framer's buffer). An
// error closes the connection: ErrTooLarge (listeners), ErrGarbage or ErrScript from the
// framing, or what emit returned.
func (f *Framer) Feed(ctx context.Context, p []byte, emit func([]byte) error) error {
	if f.fr.parser == resource.ParserDirect {
		if len(p) == 0 {
			return nil
		}
		return emit(p)
	}
	data := p
	if len(f.buf) > 0 {
		f.buf = append(f.buf, p...)
		data = f.buf
	}
	off, from := 0, f.scanned
	for off < len(data) {
		msg, used, err := f.cut(ctx, data[off:], from)
		if err != nil {
			return err
		}
		if used == 0 {
			break
		}
		if msg > 0 {
			if err := emit(data[off : off+msg]); err != nil {
				return err
			}
		}
		off, from = off+used, 0
	}
	rest := data[off:]
	if f.fr.parser == resource.ParserDelimited {
		// The tail may be the start of a delimiter; everything before it is message.
		f.scanned = max(len(rest)-len(f.fr.delim)+1, 0)
		if f.scanned > MaxBuffered {
			return fmt.Errorf("%w: %d bytes without a delimiter; at most %d are allowed", listeners.ErrTooLarge, f.scanned, MaxBuffered)
		}
	}
	f.keep(rest)
	return nil
}

// keep makes rest, which may alias buf, the buffer's content.
func (f *Framer) keep(rest []byte) {
	if cap(f.buf) > keepCap && len(rest) <= keepCap/2 {
		f.buf = append([]byte(nil), rest...)
		return
	}
	f.buf = append(f.buf[:0], rest...)
}

// cut finds the first message at the start of data: it is data[:msg], and used bytes
// (the message and, for DELIMITED, its delimiter) are consumed; used == 0 means more bytes
// are needed. from is where a DELIMITED search may start.
func (f *Framer) cut(ctx context.Context, data []byte, from int) (msg, used int, err error) {
	fr := f.fr
	switch fr.parser {
	case resource.ParserDelimited:
		i := bytes.Index(data[from:], fr.delim)
		if i < 0 {
			return 0, 0, nil
		}
		// An empty message (two delimiters in a row) is consumed but not emitted.
		return from + i, from + i + len(fr.delim), nil
	case resource.ParserFixedLength:
		if len(data) < fr.size {
			return 0, 0, nil
		}
		return fr.size, fr.size, nil
	case resource.ParserLengthField:
		head := fr.offset + fr.length
		if len(data) < head {
			return 0, 0, nil
		}
		n := fr.announced(data[fr.offset:head])
		if n > MaxBuffered {
			return 0, 0, fmt.Errorf("%w: a LENGTH_FIELD frame announces %d bytes; at most %d are allowed", listeners.ErrTooLarge, n, MaxBuffered)
		}
		frame := head + int(n)
		if len(data) < frame {
			return 0, 0, nil
		}
		return frame, frame, nil
	case resource.ParserScript:
		return f.cutScript(ctx, data)
	}
	return 0, 0, fmt.Errorf("parser %q cannot cut messages", fr.parser)
}

// cutScript asks split for the first message. It is shown a prefix of data: first
// minSplitWindow bytes, twice as many each time it asks for more while more are buffered,
// up to protocol.MaxSplitBytes. Bytes cross the sandbox at some 70 ns each, so showing
// all of a read full of small messages for each of them would cost time quadratic in the
// read; a split that answers "the first complete message" cannot tell the difference.
func (f *Framer) cutScript(ctx context.Context, data []byte) (msg, used int, err error) {
	w := max(f.window, minSplitWindow)
	for {
		window := data[:min(len(data), w, protocol.MaxSplitBytes)]
		n, err := f.fr.split.Split(ctx, window)
		switch {
		case err != nil:
			return 0, 0, fmt.Errorf("%w: %w", ErrScript, err)
		case n < 0:
			return 0, 0, fmt.Errorf("%w: split returned -1 for %d buffered bytes", ErrGarbage, len(window))
		case n > 0:
			f.window = 0
			return n, n, nil
		case len(window) == protocol.MaxSplitBytes:
			return 0, 0, fmt.Errorf("%w: split found no message in %d bytes, the most it is shown", listeners.ErrTooLarge, len(window))
		case len(window) == len(data):
			f.window = w // the next read goes on from here
			return 0, 0, nil
		}
		w *= 2
	}
}

// announced reads a LENGTH_FIELD header: an unsigned integer of 1, 2, 3, 4 or 8 bytes.
func (fr *Framing) announced(field []byte) uint64 {
	var n uint64
	for i := range field {
		b := field[i]
		if fr.little {
			b = field[len(field)-1-i]
		}
		n = n<<8 | uint64(b)
	}
	return n
}
