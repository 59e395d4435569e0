package mqttclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
)

const (
	packetPublish = 3
	packetSuback  = 9
	// maxControlPacket bounds every packet but PUBLISH: a broker sends CONNACK, SUBACK (one
	// byte per topic, at most 100 topics), PUBACK and PINGRESP, all a few bytes long.
	maxControlPacket = 64 << 10
)

var (
	errMalformed = errors.New("malformed MQTT packet")
	errBadLength = fmt.Errorf("%w: its remaining length runs over 4 bytes", errMalformed)
)

// packetFilter reads MQTT packets from the broker and passes them on to paho unchanged,
// except PUBLISH packets larger than max bytes or above QoS 0, which it discards as they
// stream in (never holding more than its read buffer) and reports with drop. paho's reader
// allocates a packet's whole announced length before reading it; behind this filter the
// most it can be asked for is max (maxControlPacket for other packets).
type packetFilter struct {
	r    *bufio.Reader
	max  int
	drop func(reason string)
	// subacks is how many topics the one SUBSCRIBE holds: paho indexes its topics by the
	// SUBACK's return codes and panics on a SUBACK with more codes than topics.
	subacks int

	bad atomic.Pointer[error] // why the stream was refused, once it was

	hdr     [5]byte
	pending []byte // fixed-header bytes not yet returned (a slice of hdr)
	body    int    // bytes of the current packet's body not yet returned
}

func newPacketFilter(r io.Reader, max int, drop func(string)) *packetFilter {
	return &packetFilter{r: bufio.NewReaderSize(r, 4096), max: max, drop: drop}
}

func (f *packetFilter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(f.pending) == 0 && f.body == 0 {
		if err := f.next(); err != nil {
			if errors.Is(err, errMalformed) {
				f.bad.CompareAndSwap(nil, &err)
			}
			return 0, err
		}
	}
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	n, err := f.r.Read(p[:min(len(p), f.body)])
	f.body -= n
	if err == io.EOF && f.body > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// next reads fixed headers until one starts a packet that passes, skipping the packets
// that do not. An end of input between packets is io.EOF; inside one, io.ErrUnexpectedEOF.
func (f *packetFilter) next() error {
	for {
		first, err := f.r.ReadByte()
		if err != nil {
			return err
		}
		f.hdr[0] = first
		n, length, mult := 1, 0, 1
		for {
			b, err := f.r.ReadByte()
			if err != nil {
				return unexpected(err)
			}
			f.hdr[n] = b
			n++
			length += int(b&0x7f) * mult
			if b&0x80 == 0 {
				break
			}
			if n == len(f.hdr) {
				f.drop("garbage")
				return errBadLength
			}
			mult *= 128
		}
		typ, size := first>>4, n+length
		skip := ""
		switch {
		case typ == packetPublish && size > f.max:
			skip = "oversize"
		case typ == packetPublish && first&0x06 != 0:
			// Every subscription is QoS 0, so a broker must deliver at QoS 0 (MQTT 3.1.1
			// §3.8.4); paho would keep a QoS 2 one until a PUBREL that may never come.
			skip = "garbage"
		case typ != packetPublish && length > maxControlPacket:
			f.drop("garbage")
			return fmt.Errorf("%w: a packet of type %d announces %d bytes", errMalformed, typ, size)
		case typ == packetSuback && length > 2+f.subacks:
			f.drop("garbage")
			return fmt.Errorf("%w: a SUBACK with %d return codes for %d topics", errMalformed, length-2, f.subacks)
		}
		if skip != "" {
			f.drop(skip)
			if _, err := f.r.Discard(length); err != nil {
				return unexpected(err)
			}
			continue
		}
		f.pending, f.body = f.hdr[:n], length
		return nil
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// filteredConn is a broker connection whose reads go through a packetFilter. Only paho's
// reader goroutine reads it.
type filteredConn struct {
	net.Conn
	f *packetFilter
}

func (c *filteredConn) Read(p []byte) (int, error) { return c.f.Read(p) }

// refused is why the filter ended the stream, or nil.
func (c *filteredConn) refused() error {
	if err := c.f.bad.Load(); err != nil {
		return *err
	}
	return nil
}
