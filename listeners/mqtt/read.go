package mqtt

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// readChunk is the most one read takes from a plain socket: many pipelined packets
// at once under load.
const readChunk = 4096

var readPool = sync.Pool{New: func() any { return new([readChunk]byte) }}

// socketReader is how a plain TCP connection is read: mochi's own bufio.Reader is
// only readBufferSize (16) bytes, and the bytes reach it through a buffer borrowed from
// readPool when the socket has data and given back as soon as they have all been read.
// So an idle connection holds no read buffer (mochi's default would be 2 KiB each, and
// 1 KiB was still the largest part of an idle connection's heap), while a busy one still
// takes up to readChunk bytes per system call. The wait for data is RawConn.Read's,
// which honours the deadlines and a Close as net.Conn.Read does, without a buffer.
//
// Only the connection's own goroutine reads (through mochi's Client), so nothing here is
// locked.
type socketReader struct {
	rc   syscall.RawConn
	buf  *[readChunk]byte // borrowed while it holds unread bytes [r, w)
	r, w int
	// What tryRead was asked and did: with dst set it reads into dst (a read as big as a
	// chunk goes straight to its destination), else into a borrowed buffer.
	dst []byte
	n   int
	err error
	// try is tryRead, bound once: a method value made on every Read would be allocated
	// on every Read, since RawConn is an interface.
	try func(fd uintptr) bool
}

// newSocketReader returns nil for a connection without a file descriptor (none of ours:
// plain connections are *net.TCPConn); it is then read as is.
func newSocketReader(c net.Conn) *socketReader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &socketReader{rc: rc}
	r.try = r.tryRead
	return r
}

func (r *socketReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.buf == nil {
		if len(p) >= readChunk {
			r.dst = p
		}
		err := r.rc.Read(r.try) // calls tryRead until it has read something or failed
		n := r.n
		r.dst, r.n = nil, 0
		if err == nil {
			err, r.err = r.err, nil
		}
		if err != nil || r.buf == nil {
			return n, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	if r.r += n; r.r == r.w {
		readPool.Put(r.buf)
		r.buf = nil
	}
	return n, nil
}

// tryRead makes one non-blocking read; false means nothing is there yet (RawConn.Read
// then waits until the socket is readable and calls it again). A buffer is borrowed only
// for the read itself and kept only if bytes arrived.
func (r *socketReader) tryRead(fd uintptr) bool {
	dst := r.dst
	var b *[readChunk]byte
	if dst == nil {
		b = readPool.Get().(*[readChunk]byte)
		dst = b[:]
	}
	n, err := syscall.Read(int(fd), dst)
	for err == syscall.EINTR {
		n, err = syscall.Read(int(fd), dst)
	}
	done := true
	switch {
	case err == syscall.EAGAIN:
		done = false
	case err != nil:
		r.err = os.NewSyscallError("read", err)
	case n == 0:
		r.err = io.EOF
	case b != nil:
		r.buf, r.r, r.w = b, 0, n
		return true
	default:
		r.n = n
		return true
	}
	if b != nil {
		readPool.Put(b)
	}
	return done
}
