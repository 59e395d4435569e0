package official

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxClockSkew is how far a signed MQTT username's timestamp may be from the node's clock,
// either way (the reference's JetLinksAuthenticator allows five minutes).
const MaxClockSkew = 5 * time.Minute

// CheckMQTT checks an MQTT CONNECT's username and password against a device's secureId and
// secureKey (SPEC §5.2). Signed mode: username "secureId|timestampMillis", password the md5
// of "secureId|timestampMillis|secureKey" as hex in either case, the timestamp within
// MaxClockSkew of now. Plain mode: username secureId, password secureKey. The result is nil,
// or wraps ErrBadCredentials or, for a correct signature over a timestamp out of range,
// ErrStaleTimestamp. A device with no secureId or secureKey never passes: empty strings
// would otherwise let an empty CONNECT in.
func CheckMQTT(secureID, secureKey, username, password string, now time.Time) error {
	if secureID == "" || secureKey == "" {
		return fmt.Errorf("%w: the device has no secureId or secureKey", ErrBadCredentials)
	}
	if id, ts, ok := strings.Cut(username, "|"); ok {
		millis, err := strconv.ParseInt(ts, 10, 64)
		if err == nil && equal(id, secureID) && equal(strings.ToLower(password), sign(username, secureKey)) {
			at := time.UnixMilli(millis)
			if at.Before(now.Add(-MaxClockSkew)) || at.After(now.Add(MaxClockSkew)) {
				return fmt.Errorf("%w: signed at %s, %s from the node's clock (at most %s)",
					ErrStaleTimestamp, at.UTC().Format(time.RFC3339), at.Sub(now).Round(time.Second), MaxClockSkew)
			}
			return nil
		}
		// A secureId may itself hold "|", so a username that is no signature may still be
		// plain.
	}
	if equal(username, secureID) && equal(password, secureKey) {
		return nil
	}
	return fmt.Errorf("%w: username or password does not match the device's secureId and secureKey", ErrBadCredentials)
}

// SignMQTT returns the signed-mode username and password a device sends at t.
func SignMQTT(secureID, secureKey string, t time.Time) (username, password string) {
	username = secureID + "|" + strconv.FormatInt(t.UnixMilli(), 10)
	return username, sign(username, secureKey)
}

// sign is the reference's DigestUtils.md5Hex(username + "|" + secureKey), lower-case hex.
func sign(username, secureKey string) string {
	sum := md5.Sum([]byte(username + "|" + secureKey))
	return hex.EncodeToString(sum[:])
}

// equal compares secrets in time independent of where they differ.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
