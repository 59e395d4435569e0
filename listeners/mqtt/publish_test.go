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
