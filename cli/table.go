package cli

import (
	"encoding/json"
	"fmt"
	"io"
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
	}
	return fmt.Sprint(v)
}
