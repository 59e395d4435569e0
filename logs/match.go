package logs

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// matcher applies a filter to records. A candidate is first tested on its raw JSON for the
// substrings that any match must contain (path, text), which rules out most records of a
// scan without decoding them; a record that passes is decoded and every filter checked.
type matcher struct {
	f             Filter
	level, method string // upper-cased like the index values
	text          *foldMatcher
	rawText       bool // the text can be looked for in the raw JSON
	path          []byte
	rawPath       bool
}

func newMatcher(f Filter) *matcher {
	m := &matcher{
		f:      f,
		level:  strings.ToUpper(f.Level),
		method: strings.ToUpper(f.Method),
		path:   []byte(f.Path),
	}
	if f.Text != "" {
		m.text = newFoldMatcher(f.Text)
		m.rawText = verbatimInJSON(f.Text)
	}
	m.rawPath = f.Path != "" && verbatimInJSON(f.Path)
	return m
}

// verbatimInJSON reports whether s appears unchanged in the stored JSON of any string that
// contains it: valid UTF-8 without the characters the encoder escapes (control characters,
// quote, backslash, U+2028, U+2029; the store's encoder does not escape HTML).
func verbatimInJSON(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

func (m *matcher) prefilter(raw []byte) bool {
	if m.rawPath && !bytes.Contains(raw, m.path) {
		return false
	}
	if m.rawText && !m.text.in(raw) {
		return false
	}
	return true
}

// storedAccess decodes a stored access record with its parameters left as raw JSON: the
// text filter matches them as stored, and only records that are returned pay for decoding
// them into a map.
type storedAccess struct {
	AccessRecord
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

func (r *storedAccess) record() (*AccessRecord, error) {
	if len(r.Parameters) > 0 {
		if err := json.Unmarshal(r.Parameters, &r.AccessRecord.Parameters); err != nil {
			return nil, err
		}
	}
	return &r.AccessRecord, nil
}

// storedSystem is storedAccess for system records and their fields.
type storedSystem struct {
	SystemRecord
	Fields json.RawMessage `json:"fields,omitempty"`
}

func (r *storedSystem) record() (*SystemRecord, error) {
	if len(r.Fields) > 0 {
		if err := json.Unmarshal(r.Fields, &r.SystemRecord.Fields); err != nil {
			return nil, err
		}
	}
	return &r.SystemRecord, nil
}

func (m *matcher) access(r *storedAccess) bool {
	f := &m.f
	switch {
	case f.Username != "" && r.Username != f.Username,
		m.method != "" && strings.ToUpper(r.HTTPMethod) != m.method,
		f.Status != 0 && r.Status != f.Status,
		f.Path != "" && !strings.HasPrefix(urlPath(r.URL), f.Path):
		return false
	}
	return m.text == nil || m.text.inString(r.URL) || m.text.inString(r.Action) ||
		m.text.inString(r.Exception) || m.text.in(r.Parameters)
}

func (m *matcher) system(r *storedSystem) bool {
	f := &m.f
	switch {
	case m.level != "" && strings.ToUpper(r.Level) != m.level,
		f.Name != "" && r.Name != f.Name:
		return false
	}
	return m.text == nil || m.text.inString(r.Message) || m.text.inString(r.ExceptionStack) ||
		m.text.in(r.Fields)
}

// foldMatcher finds a text inside another regardless of case: two runes match if they are
// equal under Unicode simple case folding, the rule of strings.EqualFold. It looks for the
// case variants of the first rune with bytes.Index, which is vectorised, so a text query
// that scans every record costs little more than reading them, in any script.
type foldMatcher struct {
	first [][]byte // UTF-8 of each case variant of the first rune ("k": k, K, U+212A)
	rest  []rune   // the runes after the first
	next  []int    // scratch: where each variant occurs next
}

func newFoldMatcher(text string) *foldMatcher {
	m := &foldMatcher{}
	r0, n := utf8.DecodeRuneInString(text)
	for r := r0; ; {
		m.first = append(m.first, utf8.AppendRune(nil, r))
		if r = unicode.SimpleFold(r); r == r0 {
			break
		}
	}
	m.rest = []rune(text[n:])
	m.next = make([]int, len(m.first))
	return m
}

func (m *foldMatcher) inString(s string) bool { return s != "" && m.in([]byte(s)) }

// in reports whether s contains the text.
func (m *foldMatcher) in(s []byte) bool {
	for i, v := range m.first {
		m.next[i] = bytes.Index(s, v)
	}
	for {
		best := -1
		for i, p := range m.next {
			if p >= 0 && (best < 0 || p < m.next[best]) {
				best = i
			}
		}
		if best < 0 {
			return false
		}
		p := m.next[best]
		if hasFoldPrefix(s[p+len(m.first[best]):], m.rest) {
			return true
		}
		if q := bytes.Index(s[p+1:], m.first[best]); q >= 0 {
			m.next[best] = p + 1 + q
		} else {
			m.next[best] = -1
		}
	}
}

func hasFoldPrefix(s []byte, prefix []rune) bool {
	for _, r := range prefix {
		if len(s) == 0 {
			return false
		}
		c, n := rune(s[0]), 1
		if c >= utf8.RuneSelf {
			c, n = utf8.DecodeRune(s)
		}
		if c != r && !foldEqual(c, r) {
			return false
		}
		s = s[n:]
	}
	return true
}

// foldEqual reports whether a and b are in the same case-folding orbit.
func foldEqual(a, b rune) bool {
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return lowerASCII(a) == lowerASCII(b)
	}
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}

func lowerASCII(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}
