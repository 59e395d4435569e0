package mqtt_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners/listenertest"
)

// Uplinks of every size around the read buffers' edges (bufio's 16 bytes, the 4 KiB read
// chunk) and far past them arrive intact, whether a client writes many packets at once
// (one read takes several, and a packet spans reads) or dribbles one in small pieces;
// plain and TLS.
func TestUplinksOfEverySizeArriveIntact(t *testing.T) {
	p := newPKI(t, false)
	sizes := []int{0, 1, 2, 13, 14, 15, 16, 17, 100, 4080, 4090, 4095, 4096, 4097, 8192, 10_000, 200_000}
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			spec := plainSpec()
			spec.Config.MaxMessageSize = 256 << 10
			if secure {
				spec = p.spec(t)
				spec.Config.MaxMessageSize = 256 << 10
			}
			rec := listenertest.NewRecorder()
			run := serve(t, spec, rec)
			c := dialRaw(t, run.Addr)
			if secure {
				tc := tls.Client(c.Conn, p.clientTLS(t, false))
				c = &raw{Conn: tc, r: bufio.NewReader(tc)}
			}
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			if code := c.connect(t, 4, "d", "u", "p"); code != 0 {
				t.Fatalf("CONNACK %#x", code)
			}
			var want [][]byte
			var burst []byte
			for i, n := range sizes {
				payload := bytes.Repeat([]byte{byte(i + 1)}, n)
				if n > 0 {
					payload[n-1] = 0xEE
				}
				want = append(want, payload)
				burst = append(burst, publish0(4, fmt.Sprintf("t/%d", i), payload)...)
			}
			c.write(t, burst) // every packet in one write
			rec.WaitFrames(t, len(sizes))
			for _, i := range []int{0, 7, 12, 15} { // then a few in 20 pieces each
				pk := publish0(4, fmt.Sprintf("t/%d", i), want[i])
				piece := max(1, len(pk)/20)
				for len(pk) > 0 {
					step := min(len(pk), piece)
					c.write(t, pk[:step])
					pk = pk[step:]
					time.Sleep(time.Millisecond) // separate segments, so reads see pieces
				}
				want = append(want, want[i])
			}
			frames := rec.WaitFrames(t, len(want))
			for i, f := range frames {
				n := i
				if i >= len(sizes) {
					n = []int{0, 7, 12, 15}[i-len(sizes)]
				}
				if f.Topic != fmt.Sprintf("t/%d", n) || !bytes.Equal(f.Payload, want[i]) {
					t.Fatalf("frame %d: %q with %d bytes, want t/%d with %d", i, f.Topic, len(f.Payload), n, len(want[i]))
				}
			}
			if r := rec.Closed(); len(r) != 0 {
				t.Fatalf("closed: %q", r)
			}
		})
	}
}
