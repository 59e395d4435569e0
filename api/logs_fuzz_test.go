package api

import (
	"net/url"
	"reflect"
	"testing"
)

// FuzzLogFilter parses arbitrary log queries. A query is refused or accepted without a
// panic, and an accepted filter survives the trip to the other nodes: what logQuery sends
// them parses back to the same filter, so every node filters its records alike.
func FuzzLogFilter(f *testing.F) {
	for _, q := range []string{
		"level=warn&logger=cluster&q=leader&from=2026-11-25T10:00:00Z&to=2026-11-25T11:00:00.123456789%2B08:00",
		"user=admin&method=post&status=409&path=/api/v1/gateways",
		"status=600", "level=trace", "from=yesterday", "to=0000-01-01T00:00:00Z", "q=%E6%97%A5%E5%BF%97&q=second",
		"from=2026-11-25T10:00:00-23:59",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		filter, err := parseLogFilter(q)
		if err != nil {
			return
		}
		again, err := parseLogFilter(logQuery(filter))
		if err != nil {
			t.Fatalf("%q: the filter sent to peers is refused: %v", raw, err)
		}
		if !filter.From.Equal(again.From) || !filter.To.Equal(again.To) {
			t.Fatalf("%q: time range changed on the way: %v–%v became %v–%v", raw, filter.From, filter.To, again.From, again.To)
		}
		filter.From, filter.To = again.From, again.To // equal instants; only the zones may differ
		if !reflect.DeepEqual(filter, again) {
			t.Fatalf("%q: filter changed on the way to peers:\n%+v\n%+v", raw, filter, again)
		}
	})
}
