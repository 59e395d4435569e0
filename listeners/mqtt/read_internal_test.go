package mqtt

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is both ends of a real TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// The socket reader returns the byte stream exactly, for reads of every size against
// writes of every size, holds no buffer once everything written was read, and ends with
// io.EOF when the peer closes.
func TestSocketReaderStream(t *testing.T) {
	client, server := tcpPair(t)
	r := newSocketReader(server)
	if r == nil {
		t.Fatal("no socket reader for a TCP connection")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 300_000)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	go func() {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), []int{1, 7, 16, 17, 4095, 4096, 4097, 20_000}[rng.IntN(8)])
			if _, err := client.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	_ = server.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, 0, len(want))
	sizes := []int{1, 2, 15, 16, 17, 100, 4095, 4096, 4097, 9000}
	for i := 0; len(got) < len(want); i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := r.Read(p)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the stream read differs from the stream written")
	}
	if r.buf != nil {
		t.Fatal("a read buffer is still held with nothing left to read")
	}
	client.Close()
	if n, err := r.Read(make([]byte, 16)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the peer closed: %d, %v; want io.EOF", n, err)
	}
}

// A read waiting for data ends with the read deadline, and with net.ErrClosed when the
// connection is closed from another goroutine, as net.Conn.Read would.
func TestSocketReaderDeadlineAndClose(t *testing.T) {
	_, server := tcpPair(t)
	r := newSocketReader(server)
	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = server.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it wait (if it has not, it fails the same way)
	server.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end the waiting read")
	}
}
