package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// column is one table column: a header and the JSON field it shows (dotted for nesting).
type column struct {
	header string
	field  string
}

// writeTable prints a list envelope ({items: [...]}) or a single object as a table.
func writeTable(w io.Writer, v any, cols []column) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return err
	}
	var rows []map[string]any
	switch t := generic.(type) {
	case map[string]any:
		if items, ok := t["items"].([]any); ok {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					rows = append(rows, m)
				}
			}
		} else {
			rows = append(rows, t)
		}
	case []any:
		for _, it := range t {
			if m, ok := it.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
	}
	return writeRows(w, rows, cols, true)
}

// writeRows prints rows as a table, with or without the header line.
func writeRows(w io.Writer, rows []map[string]any, cols []column, header bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		headers := make([]string, len(cols))
		for i, c := range cols {
			headers[i] = c.header
		}
		fmt.Fprintln(tw, strings.Join(headers, "\t"))
	}
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(lookup(r, c.field))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func cell(v any) string {
	switch t := v.(type) {
	case nil:
		return "-"
	case string:
		if t == "" {
			return "-"
		}
		return t
	case float64:
		return fmt.Sprintf("%.0f", t)
	case []any:
		parts := make([]string, len(t))
		for i, p := range t {
			parts[i] = cell(p)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		return compactMap(t)
	}
	return fmt.Sprint(v)
}

// maxMapCell bounds an object shown in one cell (a device's properties): a table line
// stays readable, and -o json has the whole.
const maxMapCell = 72

// compactMap shows an object on one line, "k=v k2=v2" by key, cut at maxMapCell.
func compactMap(m map[string]any) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + valueText(m[k])
	}
	s := []rune(strings.Join(parts, " "))
	if len(s) > maxMapCell {
		return string(s[:maxMapCell-1]) + "…"
	}
	return string(s)
}

// valueText shows a value as people read it: text as it is (on one line, so a table
// keeps its shape), anything else as JSON, so that 36.5 is not rounded and an object
// keeps its structure.
func valueText(v any) string {
	if s, ok := v.(string); ok {
		return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// missingText names the nodes of a "missing" list (node ids, or {serverId, error}) with
// their errors: "node3 (connection refused), node2".
func missingText(v any) string {
	list, _ := v.([]any)
	parts := make([]string, 0, len(list))
	for _, it := range list {
		switch m := it.(type) {
		case string:
			parts = append(parts, m)
		case map[string]any:
			p, _ := m["serverId"].(string)
			if e, _ := m["error"].(string); e != "" {
				p += " (" + e + ")"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

// warnMissing names on stderr the nodes that did not answer for an answer shown as a
// table (its top-level "missing", or its items'), so that a table lacking their part is
// not taken for the whole; -o json carries "missing" itself.
func (g *globals) warnMissing(answer map[string]any, lacking string) {
	if g.output == "json" {
		return
	}
	seen := map[string]bool{}
	var all []any
	add := func(v any) {
		list, _ := v.([]any)
		for _, it := range list {
			if k := missingText([]any{it}); k != "" && !seen[k] {
				seen[k] = true
				all = append(all, it)
			}
		}
	}
	add(answer["missing"])
	items, _ := answer["items"].([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			add(m["missing"])
		}
	}
	if len(all) > 0 {
		fmt.Fprintf(g.stderr, "Warning: no answer from %s: %s\n", missingText(all), lacking)
	}
}
