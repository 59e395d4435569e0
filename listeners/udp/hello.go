package udp

// DTLS framing constants (RFC 6347 §4.1, §4.2.2).
const (
	recordHeaderLen        = 13 // type, version, epoch, sequence number, length
	handshakeHeaderLen     = 12 // type, length, message_seq, fragment_offset, fragment_length
	contentHandshake       = 22
	contentApplicationData = 23
	typeClientHello        = 1
	typeServerHello        = 2
	// A ClientHello's record says DTLS 1.0 {254, 255} or 1.2 {254, 253}, the two pion reads.
	dtlsMajor, dtls10Minor, dtls12Minor = 0xfe, 0xff, 0xfd
)

// isClientHello reports whether a datagram from an unknown source starts a DTLS
// handshake: its first record is an epoch-0 handshake record holding the first fragment
// of a ClientHello, and every length in it fits. Anything else from a source without an
// association is garbage, dropped before it costs an association (pion/dtls's own
// listener filters on the content type alone).
func isClientHello(b []byte) bool {
	if len(b) < recordHeaderLen+handshakeHeaderLen {
		return false
	}
	version := b[1] == dtlsMajor && (b[2] == dtls10Minor || b[2] == dtls12Minor)
	if b[0] != contentHandshake || !version || b[3] != 0 || b[4] != 0 {
		return false
	}
	recLen := int(b[11])<<8 | int(b[12])
	if recLen < handshakeHeaderLen || recLen > len(b)-recordHeaderLen {
		return false
	}
	h := b[recordHeaderLen : recordHeaderLen+recLen]
	msgLen := uint24(h[1:4])
	fragOff, fragLen := uint24(h[6:9]), uint24(h[9:12])
	return h[0] == typeClientHello && fragOff == 0 && fragLen > 0 && fragLen <= msgLen &&
		fragLen <= recLen-handshakeHeaderLen
}

func uint24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// epochZero reports whether a datagram's first record is of epoch 0 (unencrypted: a
// handshake before ChangeCipherSpec, or an alert during one).
func epochZero(b []byte) bool {
	return len(b) >= recordHeaderLen && b[3] == 0 && b[4] == 0
}

// hasServerHello reports whether a datagram holds an epoch-0 handshake record starting a
// ServerHello. It reads what pion/dtls writes, to learn that a handshake got past the
// HelloVerifyRequest: pion answers a ClientHello with a ServerHello only once its cookie
// came back.
func hasServerHello(b []byte) bool {
	for len(b) >= recordHeaderLen {
		n := recordHeaderLen + (int(b[11])<<8 | int(b[12]))
		if n > len(b) {
			return false
		}
		if b[0] == contentHandshake && b[3] == 0 && b[4] == 0 && n > recordHeaderLen && b[recordHeaderLen] == typeServerHello {
			return true
		}
		b = b[n:]
	}
	return false
}
