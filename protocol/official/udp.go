package official

import "fmt"

// AuthToken is the only UDP authType there is: the datagram carries the device's secureKey.
// The reference reads the byte and ignores it (its "1 = sign" is a to-do).
const AuthToken uint8 = 0

// Datagram is one UDP datagram of the official protocol (the reference's
// UDPDeviceMessageCodec): an authType byte, the secureKey as uint16 length + UTF-8, then
// one binary message without a length prefix. The platform's answers carry AuthToken and an
// empty key; its downlinks carry the device's secureKey, as the reference writes them.
type Datagram struct {
	AuthType uint8
	Key      string
	Frame    Frame
}

// DecodeUDP reads one datagram in SPEC §5.2's dialect.
func DecodeUDP(b []byte) (Datagram, error) { return Dialect{}.DecodeUDP(b) }

// EncodeUDP writes one datagram in SPEC §5.2's dialect.
func EncodeUDP(d Datagram) ([]byte, error) { return Dialect{}.EncodeUDP(d) }

// DecodeUDP reads one datagram. The authType is returned, not judged: the reference accepts
// any.
func (dl Dialect) DecodeUDP(b []byte) (Datagram, error) {
	d := valueDecoder{b: b}
	auth, err := d.u8("authType")
	if err != nil {
		return Datagram{}, err
	}
	key, err := d.str("secureKey")
	if err != nil {
		return Datagram{}, err
	}
	f, err := dl.DecodeFrame(b[d.i:])
	if err != nil {
		return Datagram{}, err
	}
	return Datagram{AuthType: auth, Key: key, Frame: f}, nil
}

// EncodeUDP writes one datagram.
func (dl Dialect) EncodeUDP(d Datagram) ([]byte, error) {
	b, err := appendString(append(make([]byte, 0, 64), d.AuthType), d.Key)
	if err != nil {
		return nil, fmt.Errorf("secureKey: %w", err)
	}
	return dl.AppendFrame(b, d.Frame)
}
