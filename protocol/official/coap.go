package official

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/linkops/linkops/protocol"
)

// CoAPDeviceIDOption is the CoAP option number in which a device may send its id instead
// of (or besides) the path's (the reference's AbstractCoapDeviceMessageCodec).
const CoAPDeviceIDOption = 2100

// Encrypt is JetLinks' CoAP payload encryption: AES in ECB mode with PKCS#7 padding, under
// the secureKey's bytes as the key (16, 24 or 32 bytes: AES-128, -192 or -256; the
// reference itself takes only 16).
func Encrypt(secureKey string, plain []byte) ([]byte, error) {
	block, err := newCipher(secureKey)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	pad := bs - len(plain)%bs
	out := make([]byte, len(plain)+pad)
	copy(out, plain)
	for i := len(plain); i < len(out); i++ {
		out[i] = byte(pad)
	}
	for i := 0; i < len(out); i += bs {
		block.Encrypt(out[i:i+bs], out[i:i+bs])
	}
	return out, nil
}

// Decrypt reverses Encrypt. A payload that is not whole blocks or whose padding is wrong
// (which is what a wrong key gives, 255 times in 256) is ErrDecrypt.
func Decrypt(secureKey string, data []byte) ([]byte, error) {
	block, err := newCipher(secureKey)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of %d-byte blocks", ErrDecrypt, len(data), bs)
	}
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += bs {
		block.Decrypt(out[i:i+bs], data[i:i+bs])
	}
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs {
		return nil, fmt.Errorf("%w: bad padding", ErrDecrypt)
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding", ErrDecrypt)
		}
	}
	return out[:len(out)-pad], nil
}

func newCipher(secureKey string) (cipher.Block, error) {
	switch len(secureKey) {
	case 16, 24, 32:
		return aes.NewCipher([]byte(secureKey))
	}
	return nil, fmt.Errorf("%w: %d bytes, want 16, 24 or 32", ErrKey, len(secureKey))
}

// CoAPDeviceID is the device a CoAP request speaks for: the option-2100 value when there is
// one, else the path's device. Its product's secureKey is the one to decrypt with.
func CoAPDeviceID(path, deviceIDOption string) string {
	if deviceIDOption != "" {
		return deviceIDOption
	}
	_, id, _, _ := ParseTopic(coapTopic(path))
	return id
}

// coapTopic is the topic of a CoAP path, whose leading "/" the Uri-Path options lose.
func coapTopic(path string) string {
	if !strings.HasPrefix(path, "/") {
		return "/" + path
	}
	return path
}

// DecodeCoAP decodes a CoAP uplink: the path is the topic (SPEC §5.2), the payload JSON
// or CBOR (content-format 60, which the reference also takes) encrypted under secureKey,
// and the message's device is CoAPDeviceID's.
func DecodeCoAP(path, deviceIDOption, secureKey string, payload []byte) (protocol.Message, error) {
	plain, err := Decrypt(secureKey, payload)
	if err != nil {
		return protocol.Message{}, err
	}
	if plain, err = coapJSON(plain); err != nil {
		return protocol.Message{}, err
	}
	m, err := DecodeJSON(coapTopic(path), plain)
	if err != nil {
		return protocol.Message{}, err
	}
	if deviceIDOption != "" {
		m.DeviceID = deviceIDOption
	}
	return m, nil
}

// EncodeCoAP is the device side of DecodeCoAP: the path and encrypted payload of an uplink.
func EncodeCoAP(productID, secureKey string, m protocol.Message) (path string, payload []byte, err error) {
	path, plain, err := EncodeUpJSON(productID, m)
	if err != nil {
		return "", nil, err
	}
	payload, err = Encrypt(secureKey, plain)
	return path, payload, err
}

// EncodeCoAPReply is the encrypted body of a response that answers a CoAP request with a
// message, as the 2.05 answer to time-sync carries its timeSyncReply.
func EncodeCoAPReply(secureKey string, m protocol.Message) ([]byte, error) {
	if _, err := suffixOf(&m, false); err != nil {
		return nil, err
	}
	plain, err := payloadOf(&m)
	if err != nil {
		return nil, err
	}
	return Encrypt(secureKey, plain)
}

// DecodeCoAPReply is the device side of EncodeCoAPReply; topic names the reply's type and
// device, as "/{productId}/{deviceId}/time-sync/reply".
func DecodeCoAPReply(secureKey, topic string, body []byte) (protocol.Message, error) {
	plain, err := Decrypt(secureKey, body)
	if err != nil {
		return protocol.Message{}, err
	}
	return DecodeDownJSON(topic, plain)
}

// cborMaps decodes CBOR maps as JSON objects.
var cborMaps, _ = cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any(nil)), MaxNestedLevels: MaxDepth}.DecMode()

// coapJSON returns a decrypted CoAP payload as JSON: JSON as it is, CBOR converted. A CBOR
// payload starts with a major-type byte that is never '{' nor white space.
func coapJSON(plain []byte) ([]byte, error) {
	t := bytes.TrimSpace(plain)
	if len(t) == 0 || t[0] == '{' {
		return plain, nil
	}
	var v any
	if err := cborMaps.Unmarshal(plain, &v); err != nil {
		return nil, fmt.Errorf("%w: the payload is neither JSON nor CBOR: %v", ErrPayload, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: the CBOR payload has no JSON form: %v", ErrPayload, err)
	}
	return b, nil
}
