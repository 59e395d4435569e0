package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

var sessionColumns = []column{{"DEVICE", "deviceId"}, {"PRODUCT", "productId"}, {"NODE", "serverId"}, {"TRANSPORT", "transport"},
	{"REMOTE", "remote"}, {"ONLINE-AT", "onlineAt"}, {"LAST-MESSAGE", "lastMessageAt"}}

// gatewaySessionsCmd is `linkops gateway sessions ID`: the gateway's device sessions on
// every node, by device id.
func gatewaySessionsCmd(g *globals, r opResource) *cobra.Command {
	var page, pageSize int
	c := &cobra.Command{
		Use:   "sessions ID",
		Short: "List the gateway's device sessions on every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := r.path + "/" + url.PathEscape(args[0]) + "/sessions" +
				client.Query("page", strconv.Itoa(page), "pageSize", strconv.Itoa(pageSize))
			out, err := g.pagedTable(path, page, sessionColumns, "onlineAt", "lastMessageAt")
			if err == nil && out != nil {
				g.warnMissing(out, "the sessions held there are not listed")
			}
			return err
		},
	}
	c.Flags().IntVar(&page, "page", 1, "page number")
	c.Flags().IntVar(&pageSize, "page-size", 20, "sessions per page (at most 500)")
	return c
}

var gatewayStatusColumns = []column{{"NODE", "serverId"}, {"STATE", "state"}, {"ADDRESS", "address"}, {"SINCE", "since"}, {"ERROR", "error"}}

// gatewayStatusCmd is `linkops gateway status ID`: the gateway's runtime on every node.
func gatewayStatusCmd(g *globals, r opResource) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show the gateway's state on every node (running, standby, failed with the error, stopped, unreachable)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.nodeStatus(r.path+"/"+url.PathEscape(args[0])+"/status", gatewayStatusColumns)
		},
	}
}

// pagedTable GETs one page of a list, prints it as JSON or as a table of cols (the fields
// named by times shown to the second) with its total, and returns the answer when it
// printed a table (nil for JSON).
func (g *globals) pagedTable(path string, page int, cols []column, times ...string) (map[string]any, error) {
	ctx, cancel := g.ctx()
	defer cancel()
	var out map[string]any
	if _, err := g.client().Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	if g.output == "json" {
		return nil, g.print(out, nil)
	}
	items, _ := out["items"].([]any)
	rows := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			for _, k := range times {
				m[k] = shortTime(m[k])
			}
			rows = append(rows, m)
		}
	}
	if err := writeRows(g.stdout, rows, cols, true); err != nil {
		return nil, err
	}
	fmt.Fprintf(g.stdout, "(%v in all, page %d)\n", out["total"], page)
	return out, nil
}

// shortTime shows an RFC 3339 time to the second; the zero time (a session that has sent
// nothing yet) is "-".
func shortTime(v any) any {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return v
	}
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}
