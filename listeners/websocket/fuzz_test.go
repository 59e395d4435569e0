package websocket_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/linkops/linkops/listeners/listenertest"
	ws "github.com/linkops/linkops/listeners/websocket"
)

// FuzzFrames writes arbitrary bytes after a real handshake: whatever the frames, the
// server delivers messages of at most MaxMessage bytes, ends the connection cleanly,
// never panics, and keeps accepting. (gorilla parses the frames; this covers what the
// listener does with everything it lets through.)
func FuzzFrames(f *testing.F) {
	long := append(binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, 1<<63-1), 0, 0, 0, 0)
	for _, s := range [][]byte{
		clientFrame(0x81, []byte(`{"topic":"/p/d/online"}`), true),
		append(clientFrame(0x01, []byte("frag"), true), clientFrame(0x80, []byte("ment"), true)...),
		append(clientFrame(0x02, []byte("a"), true), clientFrame(0x89, []byte("ping"), true)...),
		clientFrame(0x88, []byte{0x03, 0xe8, 'b', 'y', 'e'}, true),
		clientFrame(0x88, []byte{0x03}, true),
		clientFrame(0x8a, nil, true),
		clientFrame(0x81, []byte("\xff\xfe"), true),
		clientFrame(0x81, []byte("no mask"), false),
		long,
		{0x82},
		{},
	} {
		f.Add(s)
	}
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(f, ws.WithTimings(time.Second, time.Second), plainSpec(), rec)
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}

	f.Fuzz(func(t *testing.T, in []byte) {
		c, _, err := d.Dial("ws://"+run.Addr+"/fuzz", nil)
		if err != nil {
			t.Fatalf("the listener stopped upgrading: %v", err)
		}
		nc := c.NetConn()
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = nc.Write(in) // the server may hang up first
		_ = nc.(*net.TCPConn).CloseWrite()
		_, err = io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server neither closed nor answered within 10 s for %q", in)
		}
		for _, fr := range rec.Frames() {
			if len(fr.Payload) > ws.MaxMessage || fr.Topic != "/fuzz" {
				t.Fatalf("frame of %d bytes on %q", len(fr.Payload), fr.Topic)
			}
		}
		if run.Errors("panic") != 0 {
			t.Fatalf("the session panicked on %q", in)
		}
	})
}
