package cloud

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
)

// OneNetPush is the body of one OneNET Studio data push.
type OneNetPush struct {
	Msg       string `json:"msg"`
	Signature string `json:"signature"`
	Nonce     string `json:"nonce"`
	Time      int64  `json:"time"`
	ID        string `json:"id"`
}

// ParseOneNet reads a push body. Any failure wraps ErrBadBody.
func ParseOneNet(body []byte) (OneNetPush, error) {
	var p OneNetPush
	if err := json.Unmarshal(body, &p); err != nil {
		return OneNetPush{}, fmt.Errorf("%w: not a OneNET push: %v", ErrBadBody, err)
	}
	if p.Msg == "" || p.Signature == "" || p.Nonce == "" {
		return OneNetPush{}, fmt.Errorf("%w: a OneNET push needs msg, signature and nonce", ErrBadBody)
	}
	return p, nil
}

// OneNetSignature is base64(md5(notifyToken + nonce + msg)), how OneNET signs both the URL
// check and its pushes.
func OneNetSignature(notifyToken, nonce, msg string) string {
	sum := md5.Sum([]byte(notifyToken + nonce + msg))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// VerifyOneNet checks a signature; a '+' that arrived as a space (an unencoded query
// string) is restored first. A mismatch wraps ErrUnauthorized.
func VerifyOneNet(notifyToken, nonce, msg, signature string) error {
	want := OneNetSignature(notifyToken, nonce, msg)
	got := strings.ReplaceAll(signature, " ", "+")
	if notifyToken == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return fmt.Errorf("%w: the signature does not match the gateway's notifyToken", ErrUnauthorized)
	}
	return nil
}

// DecryptOneNet turns an encrypted msg back into the plain one. With a 16-character aesKey
// (OneNET Studio) msg is base64 of AES-128-CBC/PKCS#7 with key = IV = the key's bytes; with
// a 43-character one (the older platform) the key is base64(aesKey + "="), AES-256-CBC with
// IV = its first 16 bytes, and the plaintext is 16 random bytes, a 4-byte big-endian
// length, then msg. An empty aesKey means plain pushes. Any failure wraps ErrBadBody.
func DecryptOneNet(aesKey, msg string) (string, error) {
	var key, iv []byte
	switch len(aesKey) {
	case 0:
		return msg, nil
	case 16:
		key = []byte(aesKey)
		iv = key
	case 43:
		k, err := base64.StdEncoding.DecodeString(aesKey + "=")
		if err != nil || len(k) != 32 {
			return "", fmt.Errorf("%w: the gateway's 43-character aesKey is not base64 of 32 bytes", ErrBadBody)
		}
		key, iv = k, k[:16]
	default:
		return "", fmt.Errorf("%w: the gateway's aesKey has %d characters; OneNET uses 16 or 43", ErrBadBody, len(aesKey))
	}
	ct, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(msg, " ", "+"))
	if err != nil {
		return "", fmt.Errorf("%w: the encrypted msg is not base64: %v", ErrBadBody, err)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return "", fmt.Errorf("%w: the encrypted msg is %d bytes, not whole AES blocks", ErrBadBody, len(ct))
	}
	block, _ := aes.NewCipher(key) // 16 or 32 bytes: cannot fail
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	// PKCS#7; the older platform pads to 32-byte blocks, as the WeChat-style scheme it
	// copies does, so a pad of up to 32 is accepted.
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > 32 || pad > len(plain) {
		return "", fmt.Errorf("%w: the decrypted msg has no valid padding (wrong aesKey?)", ErrBadBody)
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return "", fmt.Errorf("%w: the decrypted msg has no valid padding (wrong aesKey?)", ErrBadBody)
		}
	}
	plain = plain[:len(plain)-pad]
	if len(aesKey) == 16 {
		return string(plain), nil
	}
	if len(plain) < 20 {
		return "", fmt.Errorf("%w: the decrypted msg is shorter than its 20-byte header", ErrBadBody)
	}
	n := binary.BigEndian.Uint32(plain[16:20])
	if uint64(n) > uint64(len(plain)-20) {
		return "", fmt.Errorf("%w: the decrypted msg claims %d bytes but holds %d", ErrBadBody, n, len(plain)-20)
	}
	return string(plain[20 : 20+int(n)]), nil
}

// oneNetDevice is the device a plain msg names, when it is OneNET Studio's JSON
// (deviceName) or the older platform's (dev_id): the codec gets it as input.deviceId.
func oneNetDevice(msg string) string {
	var m struct {
		DeviceName string `json:"deviceName"`
		DevID      any    `json:"dev_id"`
	}
	if json.Unmarshal([]byte(msg), &m) != nil {
		return ""
	}
	if m.DeviceName != "" {
		return m.DeviceName
	}
	switch v := m.DevID.(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%.0f", v)
	}
	return ""
}
