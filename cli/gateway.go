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
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			path := r.path + "/" + url.PathEscape(args[0]) + "/sessions" +
				client.Query("page", strconv.Itoa(page), "pageSize", strconv.Itoa(pageSize))
			if _, err := g.client().Do(ctx, http.MethodGet, path, nil, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(out, nil)
			}
			items, _ := out["items"].([]any)
			rows := make([]map[string]any, 0, len(items))
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					m["onlineAt"], m["lastMessageAt"] = shortTime(m["onlineAt"]), shortTime(m["lastMessageAt"])
					rows = append(rows, m)
				}
			}
			if err := writeRows(g.stdout, rows, sessionColumns, true); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "(%v in all, page %d)\n", out["total"], page)
			g.warnMissing(out, "the sessions held there are not listed")
			return nil
		},
	}
	c.Flags().IntVar(&page, "page", 1, "page number")
	c.Flags().IntVar(&pageSize, "page-size", 20, "sessions per page (at most 500)")
	return c
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
