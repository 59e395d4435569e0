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
	return s != "" && !strings.ContainsAny(s, "/+#\x00")
}

// ParseTopic splits a topic /{productId}/{deviceId}/<suffix>. It is not ok unless the topic
// starts with "/" and every level is non-empty and free of wildcards; CoAP and HTTP paths
// are topics too, so a transport that strips the leading "/" puts it back.
func ParseTopic(topic string) (productID, deviceID, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "/")
	if !ok {
		return "", "", "", false
	}
	levels := strings.SplitN(rest, "/", 3)
	if len(levels) != 3 || !validLevel(levels[0]) || !validLevel(levels[1]) {
		return "", "", "", false
	}
	for _, l := range strings.Split(levels[2], "/") {
		if !validLevel(l) {
			return "", "", "", false
		}
	}
	return levels[0], levels[1], levels[2], true
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
