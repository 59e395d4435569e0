package mqtt

// For the external tests (package mqtt_test, which the test CA's imports force).
var (
	ConnectPacket   = connectPacket
	AppendString    = appendString
	AppendLength    = appendLength
	ErrNotConnected = errNotConnected
)
