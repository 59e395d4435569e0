package official

import (
	"fmt"
	"strings"
)

// Topic suffixes of SPEC §5.2 (the reference's TopicMessageCodec and
// FunctionalTopicHandlers), after /{productId}/{deviceId}/.
const (
	SuffixReportProperty     = "properties/report"
	SuffixReadProperty       = "properties/read"
	SuffixReadPropertyReply  = "properties/read/reply"
	SuffixWriteProperty      = "properties/write"
	SuffixWritePropertyReply = "properties/write/reply"
	SuffixInvokeFunction     = "function/invoke"
	SuffixInvokeReply        = "function/invoke/reply"
	SuffixEventPrefix        = "event/" // then the event id, one topic level
	SuffixOnline             = "online"
	SuffixOffline            = "offline"
	SuffixTimeSync           = "time-sync"
	SuffixTimeSyncReply      = "time-sync/reply"
	SuffixFirmwareUpgrade    = "firmware/upgrade"
	SuffixFirmwareUpgradeAck = "firmware/upgrade/reply"
	SuffixFirmwareProgress   = "firmware/upgrade/progress"
	SuffixFirmwarePull       = "firmware/pull"
	SuffixFirmwarePullReply  = "firmware/pull/reply"
	SuffixFirmwareReport     = "firmware/report"
)

// downSuffixes are the topics the platform publishes to a device, in TopicsOf's order.
var downSuffixes = []string{
	SuffixReadProperty, SuffixWriteProperty, SuffixInvokeFunction, SuffixTimeSyncReply,
	SuffixFirmwareUpgrade, SuffixFirmwarePullReply,
}

// validLevel reports whether s can be one topic level naming a product, device or event:
// not empty, and free of the level separator, MQTT wildcards and NUL (which MQTT forbids
// in topics). An id that breaks this has no topic of its own, so it gets none.
func validLevel(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', '+', '#', 0:
			return false
		}
	}
	return true
}

// ParseTopic splits a topic /{productId}/{deviceId}/<suffix>. It is not ok unless the topic
// starts with "/" and every level is non-empty and free of wildcards; CoAP and HTTP paths
// are topics too, so a transport that strips the leading "/" puts it back.
func ParseTopic(topic string) (productID, deviceID, suffix string, ok bool) {
	// Every uplink's topic is parsed, so this splits nothing it would have to allocate.
	rest, ok := strings.CutPrefix(topic, "/")
	if !ok {
		return "", "", "", false
	}
	productID, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", "", false
	}
	deviceID, suffix, ok = strings.Cut(rest, "/")
	if !ok || !validLevel(productID) || !validLevel(deviceID) || !validLevels(suffix) {
		return "", "", "", false
	}
	return productID, deviceID, suffix, true
}

// validLevels reports whether s is one or more valid levels joined by "/".
func validLevels(s string) bool {
	if s == "" || s[0] == '/' || s[len(s)-1] == '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '+', '#', 0:
			return false
		case '/':
			if s[i+1] == '/' { // not the last byte, which is no '/'
				return false
			}
		}
	}
	return true
}

// Topic joins /{productId}/{deviceId}/<suffix>, refusing ids that are no topic level.
func Topic(productID, deviceID, suffix string) (string, error) {
	if !validLevel(productID) || !validLevel(deviceID) {
		return "", fmt.Errorf("%w: product %q, device %q: ids must be non-empty and hold no '/', '+', '#' or NUL", ErrTopic, productID, deviceID)
	}
	return "/" + productID + "/" + deviceID + "/" + suffix, nil
}

// TopicsOf lists the topics the platform publishes a device's downlinks to. Nil when the ids
// cannot be topic levels.
func TopicsOf(productID, deviceID string) []string {
	if !validLevel(productID) || !validLevel(deviceID) {
		return nil
	}
	out := make([]string, len(downSuffixes))
	for i, s := range downSuffixes {
		out[i] = "/" + productID + "/" + deviceID + "/" + s
	}
	return out
}

// AllowedSubscription reports whether a device may subscribe to an MQTT topic filter: only
// when nothing the filter matches lies outside its own /{productId}/{deviceId}/..., so
// "/p/d/#" and "/p/d/properties/read" are allowed, while "#", "/+/+/#", "/p/+/#", another
// device's topics, shared subscriptions ("$share/...") and malformed filters are not.
func AllowedSubscription(productID, deviceID, filter string) bool {
	if !validLevel(productID) || !validLevel(deviceID) || strings.ContainsRune(filter, 0) {
		return false
	}
	levels := strings.Split(filter, "/")
	if len(levels) < 4 || levels[0] != "" || levels[1] != productID || levels[2] != deviceID {
		return false
	}
	for i, l := range levels[3:] {
		last := i == len(levels)-4
		switch {
		case l == "#" && last, l == "+":
		case strings.ContainsAny(l, "+#"):
			// A wildcard that is not a whole level, or '#' before the end: MQTT calls the
			// filter malformed, and the broker must not be left to guess.
			return false
		}
	}
	return true
}
