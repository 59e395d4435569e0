package official

import (
	"bytes"
	"crypto/aes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/linkops/linkops/protocol"
)

const coapKey = "0123456789abcdef"

func TestAES(t *testing.T) {
	// ECB is each block encrypted alone: check against crypto/aes block by block.
	plain := []byte(`{"properties":{"temp":36.5}}`) // 28 bytes: two blocks after padding
	enc, err := Encrypt(coapKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != 32 {
		t.Fatalf("ciphertext of %d bytes, want 32", len(enc))
	}
	block, _ := aes.NewCipher([]byte(coapKey))
	padded := append(append([]byte{}, plain...), 4, 4, 4, 4)
	for i := 0; i < 32; i += 16 {
		want := make([]byte, 16)
		block.Encrypt(want, padded[i:i+16])
		if !bytes.Equal(enc[i:i+16], want) {
			t.Fatalf("block %d = %x, want %x (ECB, PKCS#7)", i/16, enc[i:i+16], want)
		}
	}
	for _, key := range []string{coapKey, strings.Repeat("k", 24), strings.Repeat("k", 32)} {
		for _, n := range []int{0, 1, 15, 16, 17, 100} {
			p := bytes.Repeat([]byte{'x'}, n)
			c, err := Encrypt(key, p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decrypt(key, c)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("key %d bytes, %d bytes: round trip %q, %v", len(key), n, got, err)
			}
		}
	}
	// An exact block gets a whole block of padding.
	if c, _ := Encrypt(coapKey, make([]byte, 16)); len(c) != 32 {
		t.Fatalf("16 bytes encrypt to %d", len(c))
	}

	if _, err := Decrypt("fedcba9876543210", enc); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key: %v, want ErrDecrypt", err)
	}
	for _, c := range [][]byte{nil, enc[:31], enc[:15]} {
		if _, err := Decrypt(coapKey, c); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt of %d bytes: %v, want ErrDecrypt", len(c), err)
		}
	}
	// A block whose last byte decrypts to a bad pad.
	bad := make([]byte, 16)
	block.Encrypt(bad, append(bytes.Repeat([]byte{'x'}, 15), 17))
	if _, err := Decrypt(coapKey, bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("pad 17: %v", err)
	}
	block.Encrypt(bad, append(bytes.Repeat([]byte{'x'}, 14), 1, 2))
	if _, err := Decrypt(coapKey, bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("inconsistent pad: %v", err)
	}
	for _, key := range []string{"", "short", strings.Repeat("k", 17), strings.Repeat("k", 33)} {
		if _, err := Encrypt(key, plain); !errors.Is(err, ErrKey) {
			t.Errorf("Encrypt with a %d-byte key: %v, want ErrKey", len(key), err)
		}
		if _, err := Decrypt(key, enc); !errors.Is(err, ErrKey) {
			t.Errorf("Decrypt with a %d-byte key: %v, want ErrKey", len(key), err)
		}
	}
}

func TestCoAP(t *testing.T) {
	m := protocol.Message{Type: protocol.TypeReportProperty, DeviceID: "dev", MessageID: "1", Properties: map[string]any{"temp": 36.5}}
	path, payload, err := EncodeCoAP("prod", coapKey, m)
	if err != nil || path != "/prod/dev/properties/report" {
		t.Fatalf("EncodeCoAP = %q, %v", path, err)
	}
	got, err := DecodeCoAP(strings.TrimPrefix(path, "/"), "", coapKey, payload)
	if err != nil || got.DeviceID != "dev" || got.Properties["temp"] != 36.5 {
		t.Fatalf("DecodeCoAP = %#v, %v", got, err)
	}
	if _, err := DecodeCoAP(path, "", "fedcba9876543210", payload); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key: %v, want ErrDecrypt", err)
	}
	plainPayload := []byte(`{"properties":{}}`)
	if _, err := DecodeCoAP(path, "", coapKey, plainPayload); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("unencrypted payload: %v, want ErrDecrypt", err)
	}
	// Option 2100 names the device.
	if id := CoAPDeviceID("/prod/dev/online", "other"); id != "other" {
		t.Fatalf("CoAPDeviceID with the option = %q", id)
	}
	if id := CoAPDeviceID("prod/dev/online", ""); id != "dev" {
		t.Fatalf("CoAPDeviceID from the path = %q", id)
	}
	if got, err := DecodeCoAP(path, "other", coapKey, payload); err != nil || got.DeviceID != "other" {
		t.Fatalf("DecodeCoAP with option 2100 = %#v, %v", got, err)
	}

	// The time-sync answer: a 2.05 body, encrypted.
	body, err := EncodeCoAPReply(coapKey, protocol.Message{Type: protocol.TypeTimeSyncReply, MessageID: "t1", Timestamp: 1700000000000})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Decrypt(coapKey, body)
	if err != nil || string(plain) != `{"messageId":"t1","timestamp":1700000000000}` {
		t.Fatalf("reply body %s, %v", plain, err)
	}
	reply, err := DecodeCoAPReply(coapKey, "/prod/dev/time-sync/reply", body)
	if err != nil || reply.Type != protocol.TypeTimeSyncReply || reply.Timestamp != 1700000000000 || reply.MessageID != "t1" {
		t.Fatalf("DecodeCoAPReply = %#v, %v", reply, err)
	}
	if _, err := EncodeCoAPReply(coapKey, protocol.Message{Type: protocol.TypeReportProperty}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("EncodeCoAPReply of an uplink: %v", err)
	}
}

// TestCoAPAcceptsCBOR: a CBOR report (content-format 60) decrypts and decodes like its
// JSON form.
func TestCoAPAcceptsCBOR(t *testing.T) {
	const key = "0123456789abcdef"
	body, err := cbor.Marshal(map[string]any{"messageId": "m1", "properties": map[string]any{"temp": 21.5, "on": true}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt(key, body)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeCoAP("/p/d/properties/report", "", key, enc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeReportProperty || m.MessageID != "m1" || m.Properties["temp"] != 21.5 || m.Properties["on"] != true {
		t.Fatalf("CBOR report decoded as %+v", m)
	}
	garbage, _ := Encrypt(key, []byte{0xff, 0x00, 0x13})
	if _, err := DecodeCoAP("/p/d/properties/report", "", key, garbage); err == nil {
		t.Fatal("garbage that is neither JSON nor CBOR decoded")
	}
}
