package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// InternalHeader carries the proof that a node-to-node call comes from a holder of the
// cluster key.
const InternalHeader = "X-Linkops-Internal"

// internalSkew is how far a signed call's clock may be from ours; it bounds replays.
const internalSkew = 30 * time.Second

// SignInternal returns the InternalHeader value for a call: a timestamp and the
// HMAC-SHA256, under the cluster key, of the method, path and timestamp.
func SignInternal(key []byte, method, path string, now time.Time) string {
	ts := strconv.FormatInt(now.UnixNano(), 10)
	return ts + "." + internalMAC(key, method, path, ts)
}

// VerifyInternal checks an InternalHeader value.
func VerifyInternal(key []byte, header, method, path string, now time.Time) error {
	ts, mac, ok := strings.Cut(header, ".")
	if !ok {
		return fmt.Errorf("%s header missing or malformed", InternalHeader)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%s timestamp malformed", InternalHeader)
	}
	if d := now.Sub(time.Unix(0, n)); d > internalSkew || d < -internalSkew {
		return fmt.Errorf("%s timestamp is %s away from this node's clock (limit %s)", InternalHeader, d.Round(time.Second), internalSkew)
	}
	if !hmac.Equal([]byte(mac), []byte(internalMAC(key, method, path, ts))) {
		return fmt.Errorf("%s signature does not match this node's cluster key", InternalHeader)
	}
	return nil
}

func internalMAC(key []byte, method, path, ts string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(method + " " + path + " " + ts))
	return hex.EncodeToString(m.Sum(nil))
}
