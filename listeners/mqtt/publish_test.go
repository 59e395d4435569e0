package mqtt_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/mqtt"
)

// binaryPayload is random bytes with a NUL and a newline in them.
func binaryPayload(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[0], b[n/2] = 0, '\n'
	return b
}

// mosquitto_pub at QoS 0, 1 and 2, over MQTT 3.1.1 and 5.0, plain and TLS: each PUBLISH is
// one frame with its topic and exact bytes, the CONNECT fields reach the handler, and
// each client's disconnect closes its session.
func TestMosquittoPublishes(t *testing.T) {
	p := newPKI(t, false)
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			spec := plainSpec()
			if secure {
				spec = p.spec(t)
			}
			rec := listenertest.NewRecorder()
			run := serve(t, spec, rec)
			n := 0
			for _, version := range []string{"mqttv311", "mqttv5"} {
				for _, qos := range []string{"0", "1", "2"} {
					id := fmt.Sprintf("dev-%s-q%s", version, qos)
					payload := binaryPayload(t, 700)
					file := filepath.Join(t.TempDir(), "payload")
					if err := os.WriteFile(file, payload, 0o600); err != nil {
						t.Fatal(err)
					}
					args := append(hostPort(t, run.Addr), "-V", version, "-q", qos, "-i", id,
						"-u", "user-"+id, "-P", "pw-"+id, "-t", "/prod/"+id+"/properties/report", "-f", file)
					if secure {
						args = append(args, "--cafile", p.caFile, "--insecure")
					}
					if out, err := mosquitto(t, "mosquitto_pub", args...); err != nil {
						t.Fatalf("mosquitto_pub %s: %v\n%s", id, err, out)
					}
					n++
					f := rec.WaitFrames(t, n)[n-1]
					if f.Topic != "/prod/"+id+"/properties/report" || !bytes.Equal(f.Payload, payload) {
						t.Fatalf("%s: frame %q % x, want its topic and the %d bytes sent", id, f.Topic, f.Payload, len(payload))
					}
					info := rec.Opened()[n-1]
					wantVersion := byte(4)
					if version == "mqttv5" {
						wantVersion = 5
					}
					if info.Transport != listeners.TransportMQTT || info.ClientID != id || info.Username != "user-"+id ||
						info.Password != "pw-"+id || info.MQTTVersion != wantVersion || info.TLS != secure ||
						!strings.HasPrefix(info.Remote, "127.0.0.1:") {
						t.Fatalf("%s: ConnInfo %+v", id, info)
					}
					if reasons := rec.WaitClosed(t, n); reasons[n-1] != "client disconnected" {
						t.Fatalf("%s: closed with %q, want the client's DISCONNECT", id, reasons[n-1])
					}
				}
			}
		})
	}
}

// paho (MQTT 3.1.1) at QoS 0 and 1, plain and TLS: frames arrive intact and in order.
func TestPahoPublishes(t *testing.T) {
	p := newPKI(t, false)
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			spec := plainSpec()
			if secure {
				spec = p.spec(t)
			}
			rec := listenertest.NewRecorder()
			run := serve(t, spec, rec)
			cfg := p.clientTLS(t, false)
			if !secure {
				cfg = nil
			}
			c, err := pahoClient(t, run.Addr, "paho-1", cfg)
			if err != nil {
				t.Fatal(err)
			}
			var sent [][]byte
			for i := range 20 {
				payload := binaryPayload(t, 100+i*50)
				wait(t, c.Publish(fmt.Sprintf("t/%d", i), byte(i%2), false, payload))
				sent = append(sent, payload)
			}
			frames := rec.WaitFrames(t, len(sent))
			for i, f := range frames {
				if f.Topic != fmt.Sprintf("t/%d", i) || !bytes.Equal(f.Payload, sent[i]) {
					t.Fatalf("frame %d: %q (%d bytes), want t/%d with %d bytes", i, f.Topic, len(f.Payload), i, len(sent[i]))
				}
			}
			if info := rec.Opened()[0]; info.ClientID != "paho-1" || info.Username != "user-paho-1" ||
				info.Password != "pass-paho-1" || info.MQTTVersion != 4 || info.TLS != secure {
				t.Fatalf("ConnInfo %+v", info)
			}
		})
	}
}

// A QoS 0 PUBLISH (publishQoS0, beside mochi's processPublish) is held to mochi's rules:
// a $SYS topic is dropped and the connection kept; on 5.0, a topic alias (none is
// offered) ends the connection with DISCONNECT 0x94 and reaches no Session; the message
// that follows a dropped one still arrives.
func TestQoS0PublishRules(t *testing.T) {
	rec := listenertest.NewRecorder()
	run := serve(t, plainSpec(), rec)

	c := dialRaw(t, run.Addr)
	if code := c.connect(t, 4, "d4", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	c.write(t, publish0(4, "$SYS/broker/x", []byte("dropped")))
	c.write(t, publish0(4, "/p/d4/properties/report", []byte("kept")))
	if f := rec.WaitFrames(t, 1); f[0].Topic != "/p/d4/properties/report" || string(f[0].Payload) != "kept" {
		t.Fatalf("frames %+v, want only the report", f)
	}

	c5 := dialRaw(t, run.Addr)
	if code := c5.connect(t, 5, "d5", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	// properties: length 3, topic alias (0x23) 1
	body := append(mqtt.AppendString(nil, "/p/d5/properties/report"), 3, 0x23, 0, 1)
	body = append(body, "aliased"...)
	c5.write(t, append(mqtt.AppendLength([]byte{0x30}, len(body)), body...))
	typ, reason := c5.read(t)
	if typ != 0xe0 || len(reason) < 1 || reason[0] != 0x94 {
		t.Fatalf("want DISCONNECT 0x94 (topic alias invalid), got %#x % x", typ, reason)
	}
	c5.closedByServer(t)
	rec.WaitClosed(t, 1)
	for _, f := range rec.Frames() {
		if string(f.Payload) != "kept" {
			t.Fatalf("a refused PUBLISH reached the Session: %+v", f)
		}
	}
}
