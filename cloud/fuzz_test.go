package cloud_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/linkops/linkops/cloud"
)

// Keys of the two OneNET generations (SPEC §5.3).
const (
	studioKey = "0123456789abcdef"                            // 16 characters: OneNET Studio
	olderKey  = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 characters: the older platform
)

// encryptOneNet is the platform's side of DecryptOneNet, written from its documentation.
func encryptOneNet(t testing.TB, aesKey, msg string) string {
	t.Helper()
	var key, iv, plain []byte
	blockPad := aes.BlockSize
	switch len(aesKey) {
	case 16:
		key, iv, plain = []byte(aesKey), []byte(aesKey), []byte(msg)
	case 43:
		k, err := base64.StdEncoding.DecodeString(aesKey + "=")
		if err != nil || len(k) != 32 {
			t.Fatalf("aesKey %q: %v", aesKey, err)
		}
		key, iv = k, k[:16]
		plain = append(bytes.Repeat([]byte{7}, 16), binary.BigEndian.AppendUint32(nil, uint32(len(msg)))...)
		plain = append(plain, msg...)
		blockPad = 32 // the older platform pads to 32 bytes
	default:
		t.Fatalf("aesKey of %d characters", len(aesKey))
	}
	pad := blockPad - len(plain)%blockPad
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
	return base64.StdEncoding.EncodeToString(ct)
}

func TestDecryptOneNetBothKeyLengths(t *testing.T) {
	const msg = `{"deviceName":"d1","data":{"temp":21.5}}`
	for _, key := range []string{studioKey, olderKey} {
		got, err := cloud.DecryptOneNet(key, encryptOneNet(t, key, msg))
		if err != nil || got != msg {
			t.Errorf("key of %d characters: %q, %v; want %q", len(key), got, err, msg)
		}
	}
	if _, err := cloud.DecryptOneNet(studioKey, encryptOneNet(t, "fedcba9876543210", msg)); !errors.Is(err, cloud.ErrBadBody) {
		// A wrong key almost always breaks the padding; the signature is what refuses it.
		t.Logf("a msg under another key decrypted without a padding error: %v", err)
	}
}

func TestOneNetSignature(t *testing.T) {
	sig := cloud.OneNetSignature("token", "nonce", "msg")
	if err := cloud.VerifyOneNet("token", "nonce", "msg", sig); err != nil {
		t.Fatal(err)
	}
	// A '+' of the base64 that arrived as a space is restored.
	for sig2 := sig; ; {
		if i := bytes.IndexByte([]byte(sig2), '+'); i >= 0 {
			sig2 = sig2[:i] + " " + sig2[i+1:]
			if err := cloud.VerifyOneNet("token", "nonce", "msg", sig2); err != nil {
				t.Fatalf("signature with '+' as space refused: %v", err)
			}
			continue
		}
		break
	}
	if err := cloud.VerifyOneNet("token", "nonce", "msg2", sig); !errors.Is(err, cloud.ErrUnauthorized) {
		t.Fatalf("wrong msg: %v", err)
	}
	if err := cloud.VerifyOneNet("", "nonce", "msg", cloud.OneNetSignature("", "nonce", "msg")); !errors.Is(err, cloud.ErrUnauthorized) {
		t.Fatalf("a gateway without notifyToken verified a push: %v", err)
	}
}

// FuzzParseCTWing: any body is either a push or ErrBadBody, never a panic; what a push
// hands the codec is set exactly when it is not an online/offline report.
func FuzzParseCTWing(f *testing.F) {
	for _, s := range []string{
		`{"messageType":"dataReport","deviceId":"d1","payload":{"temp":1}}`,
		`{"messageType":"dataReport","deviceId":"d1","payload":{"APPdata":"AQID"}}`,
		`{"messageType":"dataReport","deviceId":"d1","payload":{"APPdata":"!!"}}`,
		`{"messageType":"deviceOnlineOfflineReport","deviceId":"d1","eventType":1}`,
		`{"messageType":"deviceOnlineOfflineReport","deviceId":"d1","eventType":7}`,
		`{"messageType":"eventReport","deviceId":"d1","eventContent":{"a":1}}`,
		`{"messageType":"commandResponse","deviceId":"d1","result":{"resultCode":"OK"}}`,
		`{"messageType":"dataReport","deviceId":"d1","payload":null}`,
		`{"deviceId":"d1"}`, `[]`, `null`, ``, `{`, `{"messageType":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := cloud.ParseCTWing(body)
		if err != nil {
			if !errors.Is(err, cloud.ErrBadBody) {
				t.Fatalf("error %v does not wrap ErrBadBody", err)
			}
			return
		}
		if p.DeviceID == "" || p.MessageType == "" {
			t.Fatalf("push without device or type: %+v", p)
		}
		if (p.Online != nil) != (p.MessageType == cloud.CTWingOnlineOffline) {
			t.Fatalf("online set for %s", p.MessageType)
		}
		if p.Online == nil && p.Bytes == nil {
			t.Fatalf("a %s push gives the codec nothing", p.MessageType)
		}
	})
}

// FuzzOneNet: any body, key and msg are either decoded or refused with the package's
// sentinels, never a panic; an encrypted msg of either key length round-trips.
func FuzzOneNet(f *testing.F) {
	f.Add([]byte(`{"msg":"m","signature":"s","nonce":"n","time":1,"id":"i"}`), studioKey, "hello")
	f.Add([]byte(`{"msg":1}`), olderKey, `{"deviceName":"d"}`)
	f.Add([]byte(`{`), "", "")
	f.Add([]byte(`{"msg":"AAAA","signature":"s","nonce":"n"}`), "short", "x")
	f.Fuzz(func(t *testing.T, body []byte, key, msg string) {
		if p, err := cloud.ParseOneNet(body); err != nil {
			if !errors.Is(err, cloud.ErrBadBody) {
				t.Fatalf("parse error %v does not wrap ErrBadBody", err)
			}
		} else if err := cloud.VerifyOneNet("token", p.Nonce, p.Msg, p.Signature); err != nil && !errors.Is(err, cloud.ErrUnauthorized) {
			t.Fatalf("verify error %v", err)
		}
		// Arbitrary ciphertext under an arbitrary key: refused or decoded, no panic.
		if _, err := cloud.DecryptOneNet(key, msg); err != nil && !errors.Is(err, cloud.ErrBadBody) {
			t.Fatalf("decrypt error %v does not wrap ErrBadBody", err)
		}
		for _, k := range []string{studioKey, olderKey} {
			got, err := cloud.DecryptOneNet(k, encryptOneNet(t, k, msg))
			if err != nil || got != msg {
				t.Fatalf("key of %d characters: %q, %v; want %q", len(k), got, err, msg)
			}
		}
	})
}

func md5Base64(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
