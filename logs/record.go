package logs

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kinds of record.
const (
	Access = "access"
	System = "system"
)

// AccessRecord is one API request (SPEC §4.9).
type AccessRecord struct {
	ID           string         `json:"id"`
	ServerID     string         `json:"serverId"`
	Action       string         `json:"action"`
	URL          string         `json:"url"`
	HTTPMethod   string         `json:"httpMethod"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	IP           string         `json:"ip"`
	Username     string         `json:"username,omitempty"`
	Status       int            `json:"status"`
	RequestTime  time.Time      `json:"requestTime"`
	ResponseTime time.Time      `json:"responseTime"`
	DurationMs   float64        `json:"durationMs"`
	Exception    string         `json:"exception,omitempty"`
}

// SystemRecord is one structured log record of a node.
type SystemRecord struct {
	ID             string         `json:"id"`
	ServerID       string         `json:"serverId"`
	Level          string         `json:"level"` // DEBUG|INFO|WARN|ERROR
	Name           string         `json:"name"`  // logger / component
	Message        string         `json:"message"`
	ExceptionStack string         `json:"exceptionStack,omitempty"`
	Fields         map[string]any `json:"fields,omitempty"`
	CreateTime     time.Time      `json:"createTime"`
	Caller         string         `json:"caller,omitempty"`
}

// keyLen is the length of a record key: 8 bytes of big-endian unix nanoseconds, then a
// 4-byte sequence number that orders records of the same nanosecond.
const keyLen = 12

type recordKey [keyLen]byte

func makeKey(t time.Time, seq uint32) recordKey {
	var k recordKey
	binary.BigEndian.PutUint64(k[:8], timeNanos(t))
	binary.BigEndian.PutUint32(k[8:], seq)
	return k
}

// timeNanos maps a time to an unsigned, order-preserving key prefix. Times before 1970 (or
// beyond what UnixNano can represent) are clamped: log records do not have such times, and
// a clamped key still sorts correctly against every real one.
func timeNanos(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	if t.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// idLen is the length of the part of an id after "<serverId>.": 16 hex digits of time, a
// dash and 8 hex digits of sequence.
const idLen = 16 + 1 + 8

// formatID renders a record id: "<serverId>.<16 hex time>-<8 hex sequence>". Ids of one
// node therefore sort (as strings) in key order.
func formatID(serverID string, k recordKey) string {
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, len(serverID)+1+idLen)
	b = append(b, serverID...)
	b = append(b, '.')
	for i, c := range k {
		if i == 8 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(b)
}

// parseID splits an id into the server id and the record key. Only lower-case hex is
// accepted, so that every record has exactly one id.
func parseID(id string) (serverID string, k recordKey, ok bool) {
	dot := strings.LastIndexByte(id, '.')
	if dot < 0 || !validNodeID(id[:dot]) || len(id)-dot-1 != idLen {
		return "", k, false
	}
	rest := id[dot+1:]
	if rest[16] != '-' {
		return "", k, false
	}
	hex := rest[:16] + rest[17:]
	for i := range keyLen {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return "", k, false
		}
		k[i] = hi<<4 | lo
	}
	return id[:dot], k, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// validNodeID reports whether s matches ^[A-Za-z0-9_-]{1,64}$, the node id syntax; it
// contains no '.', which is what lets an id be split at its last dot.
func validNodeID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NodeOf returns the server id embedded in a record id, or "" if the id is malformed. The
// api layer uses it to send GET /logs/…/{id} to the node that stores the record.
func NodeOf(id string) string {
	node, _, ok := parseID(id)
	if !ok {
		return ""
	}
	return node
}

// maxIndexValue bounds the value part of an index key. Longer values share an index entry
// with every value of the same prefix; that is harmless because every filter is re-checked
// on the decoded record.
const maxIndexValue = 256

// indexValue is the form a filter value takes in an index key. It stops at the first NUL so
// that "value 0x00" is an unambiguous prefix of exactly that value's entries.
func indexValue(v string) string {
	if i := strings.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	if len(v) > maxIndexValue {
		v = v[:maxIndexValue]
	}
	return v
}

// Index values of an access record, in the order of kind.indexes: username, method, status.
func (r *AccessRecord) indexValues() [maxIndexes]string {
	return accessIndexValues(r.Username, r.HTTPMethod, r.Status)
}

func accessIndexValues(username, method string, status int) [maxIndexes]string {
	var v [maxIndexes]string
	v[0] = indexValue(username)
	v[1] = indexValue(strings.ToUpper(method))
	if status != 0 {
		v[2] = strconv.Itoa(status)
	}
	return v
}

// Index values of a system record, in the order of kind.indexes: level, name.
func (r *SystemRecord) indexValues() [maxIndexes]string {
	return systemIndexValues(r.Level, r.Name)
}

func systemIndexValues(level, name string) [maxIndexes]string {
	var v [maxIndexes]string
	v[0] = indexValue(strings.ToUpper(level))
	v[1] = indexValue(name)
	return v
}

// urlPath returns the path of a request URL as logged: absolute ("https://host/p?q") or
// origin-form ("/p?q"), without query string or fragment.
func urlPath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 && !strings.HasPrefix(u, "/") {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			return "/"
		}
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u
}
