package official

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/linkops/linkops/protocol"
)

// TestUDPGolden derives its vectors from the reference's UDPDeviceMessageCodec: doEncode
// writes writeByte(0), DataType.STRING.write(token), then BinaryMessageType.write of the
// message; its ack answers with an empty token.
func TestUDPGolden(t *testing.T) {
	report := Frame{Type: FrameReportProperty, Timestamp: goldenTS, Seq: 1, DeviceID: "test",
		Message: protocol.Message{Properties: map[string]any{"temp": 32.88}}}
	want := unhex(t, "00", "0005 61646d696e", "03", tsHex, "0001", idTest, "0001", temp3288)
	got, err := EncodeUDP(Datagram{AuthType: AuthToken, Key: "admin", Frame: report})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("EncodeUDP = %x, %v; want %x", got, err, want)
	}
	d, err := DecodeUDP(want)
	if err != nil {
		t.Fatal(err)
	}
	if d.AuthType != AuthToken || d.Key != "admin" || d.Frame.DeviceID != "test" ||
		!reflect.DeepEqual(d.Frame.Message.Properties, report.Message.Properties) {
		t.Fatalf("DecodeUDP = %+v", d)
	}

	answer := Datagram{Frame: AckFor(d.Frame, AckOK, time.UnixMilli(goldenTS))}
	got, err = EncodeUDP(answer)
	if want := unhex(t, "00", "0000", "02", tsHex, "0001", idTest, "00"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ack datagram = %x, %v; want %x", got, err, want)
	}

	ref := Dialect{UntypedDeviceID: true}
	got, err = ref.EncodeUDP(Datagram{Key: "admin", Frame: report})
	if want := unhex(t, "00", "0005 61646d696e", "03", tsHex, "0001", "0004 74657374", "0001", temp3288); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reference dialect EncodeUDP = %x, %v; want %x", got, err, want)
	}
}

func TestUDPGarbage(t *testing.T) {
	for _, h := range []string{"", "00", "00 00", "00 0005 6164", "00 0000", "00 0000 03"} {
		if _, err := DecodeUDP(unhex(t, h)); !errors.Is(err, ErrFrame) {
			t.Errorf("DecodeUDP(%q): %v, want ErrFrame", h, err)
		}
	}
}
