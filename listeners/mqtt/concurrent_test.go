package mqtt_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// Downlinks sent from several goroutines while the client publishes at QoS 1 (so mochi
// writes a PUBACK from its read goroutine for each) share one stream without tearing it:
// every packet the client reads parses, every downlink arrives once with its bytes, every
// PUBLISH is acknowledged and reaches the session. Plain and TLS; run under -race.
func TestConcurrentSendAndPublish(t *testing.T) {
	p := newPKI(t, false)
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			spec := plainSpec()
			if secure {
				spec = p.spec(t)
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
			rec.WaitOpened(t, 1)
			conn := rec.Conns()[0]

			const senders, perSender, publishes = 4, 200, 400
			want := map[string][]byte{}
			for g := range senders {
				for i := range perSender {
					want[fmt.Sprintf("/p/d/down/%d/%d", g, i)] = bytes.Repeat([]byte{byte(g), byte(i)}, 1+(i*37)%1500)
				}
			}

			type result struct {
				downs map[string][]byte
				acks  map[int]bool
				err   error
			}
			read := make(chan result, 1)
			go func() {
				r := result{downs: map[string][]byte{}, acks: map[int]bool{}}
				for len(r.downs) < len(want) || len(r.acks) < publishes {
					typ, body, err := c.next()
					if err != nil {
						r.err = fmt.Errorf("after %d downlinks and %d PUBACKs: %w", len(r.downs), len(r.acks), err)
						break
					}
					switch {
					case typ == 0x30 && len(body) >= 2 && 2+u16(body) <= len(body):
						topic := string(body[2 : 2+u16(body)])
						if _, dup := r.downs[topic]; dup {
							r.err = fmt.Errorf("downlink %s twice", topic)
						}
						r.downs[topic] = body[2+u16(body):]
					case typ == 0x40 && len(body) == 2:
						r.acks[u16(body)] = true
					default:
						r.err = fmt.Errorf("packet %#x % x is neither a QoS 0 PUBLISH nor a PUBACK: the stream tore", typ, body[:min(len(body), 16)])
					}
					if r.err != nil {
						break
					}
				}
				read <- r
			}()

			var wg sync.WaitGroup
			errs := make(chan error, senders+1)
			for g := range senders {
				wg.Go(func() {
					for i := range perSender {
						topic := fmt.Sprintf("/p/d/down/%d/%d", g, i)
						if err := conn.Send(listeners.Frame{Topic: topic, Payload: want[topic]}); err != nil {
							errs <- fmt.Errorf("Send %s: %w", topic, err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				for i := 1; i <= publishes; i++ {
					if _, err := c.Write(publish1(uint16(i), fmt.Sprintf("/p/d/up/%d", i), []byte("report"))); err != nil {
						errs <- fmt.Errorf("PUBLISH %d: %w", i, err)
						return
					}
				}
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			r := <-read
			if r.err != nil {
				t.Fatal(r.err)
			}
			for topic, payload := range want {
				if !bytes.Equal(r.downs[topic], payload) {
					t.Fatalf("downlink %s: %d bytes, want %d intact", topic, len(r.downs[topic]), len(payload))
				}
			}
			if frames := rec.WaitFrames(t, publishes); len(frames) != publishes {
				t.Fatalf("%d frames, want %d", len(frames), publishes)
			}
		})
	}
}

// publish1 encodes a 3.1.1 QoS 1 PUBLISH.
func publish1(id uint16, topic string, payload []byte) []byte {
	body := binary.BigEndian.AppendUint16(mqtt.AppendString(nil, topic), id)
	body = append(body, payload...)
	return append(mqtt.AppendLength([]byte{0x32}, len(body)), body...)
}
