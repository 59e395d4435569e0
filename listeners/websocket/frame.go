package websocket

import (
	"strings"
	"unicode/utf8"
)

// isText reports whether a downlink goes as a text message (see the package
// documentation): valid UTF-8 without C0 control characters other than tab, LF and CR.
func isText(p []byte) bool {
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
		p = p[size:]
	}
	return true
}

// maxCloseText is what a close frame holds besides its code: control frames carry at
// most 125 bytes (RFC 6455 §5.5).
const maxCloseText = 123

// closeText makes a reason fit a close frame: valid UTF-8 (a peer must fail the
// connection otherwise, §5.5.1), cut at a character boundary.
func closeText(reason string) string {
	reason = strings.ToValidUTF8(reason, "?")
	if len(reason) <= maxCloseText {
		return reason
	}
	cut := maxCloseText
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
