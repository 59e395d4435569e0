package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

var logColumns = map[string][]column{
	"access": {{"TIME", "requestTime"}, {"NODE", "serverId"}, {"USER", "username"}, {"METHOD", "httpMethod"}, {"URL", "url"}, {"STATUS", "status"}, {"MS", "durationMs"}},
	"system": {{"TIME", "createTime"}, {"NODE", "serverId"}, {"LEVEL", "level"}, {"LOGGER", "name"}, {"MESSAGE", "message"}},
}

// logsCmd is `linkops logs access|system`: the cluster-wide logs, newest first, or with
// --follow the new records as they arrive, oldest first.
func logsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "logs", Short: "Search the access and system logs of every node"}
	for _, kind := range []string{"access", "system"} {
		var from, to, node, level, logger, user, method, status, path, text string
		var page, pageSize int
		var follow bool
		var interval time.Duration
		c := &cobra.Command{
			Use:   kind,
			Short: "Show the " + kind + " log of every node, newest first",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				pairs := []string{"from", from, "to", to, "node", node, "level", level, "logger", logger, "user", user,
					"method", method, "status", status, "path", path, "q", text}
				if !follow {
					ctx, cancel := g.ctx()
					defer cancel()
					var out map[string]any
					q := append(pairs, "page", strconv.Itoa(page), "pageSize", strconv.Itoa(pageSize))
					if _, err := g.client().Do(ctx, http.MethodGet, "/api/v1/logs/"+kind+client.Query(q...), nil, &out); err != nil {
						return err
					}
					if err := g.print(out, logColumns[kind]); err != nil {
						return err
					}
					warnMissing(g, out)
					return nil
				}
				return followLogs(g, kind, pairs, interval)
			},
		}
		f := c.Flags()
		f.StringVar(&from, "from", "", "only records at or after this RFC 3339 time")
		f.StringVar(&to, "to", "", "only records before this RFC 3339 time (pass the previous answer's \"to\" to page without shifts)")
		f.StringVar(&node, "node", "", "only this node's records")
		f.StringVar(&text, "query", "", "text the record must contain (case-insensitive)")
		if kind == "system" {
			f.StringVar(&level, "level", "", "DEBUG, INFO, WARN or ERROR")
			f.StringVar(&logger, "logger", "", "component that logged it, e.g. api, raft, cluster")
		} else {
			f.StringVar(&user, "user", "", "user name")
			f.StringVar(&method, "method", "", "HTTP method")
			f.StringVar(&status, "status", "", "HTTP status code")
			f.StringVar(&path, "path", "", "URL path prefix, e.g. /api/v1/gateways")
		}
		f.IntVar(&page, "page", 1, "page number")
		f.IntVar(&pageSize, "page-size", 20, "records per page (at most 500)")
		f.BoolVarP(&follow, "follow", "f", false, "keep printing new records as they arrive (Ctrl-C to stop)")
		f.DurationVar(&interval, "interval", 2*time.Second, "with --follow: how often to ask")
		cmd.AddCommand(c)
	}
	return cmd
}

// followOverlap is how far back each poll looks again: an access record carries the time
// its request started and reaches the store only when it ended, so it can arrive after
// newer records were already shown. Records seen before are not printed twice.
const followOverlap = 30 * time.Second

// followLogs polls for records it has not printed yet and prints them oldest first.
func followLogs(g *globals, kind string, pairs []string, interval time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	timeField := logColumns[kind][0].field
	seen := map[string]time.Time{}
	since := time.Now().Add(-time.Minute).UTC()
	first := true
	for {
		var fresh []map[string]any
		for page := 1; page <= 20; page++ {
			q := append(append([]string{}, pairs...), "from", since.Add(-followOverlap).Format(time.RFC3339Nano),
				"pageSize", "500", "page", strconv.Itoa(page))
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var out struct {
				Items []map[string]any `json:"items"`
			}
			_, err := g.client().Do(cctx, http.MethodGet, "/api/v1/logs/"+kind+client.Query(q...), nil, &out)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				fmt.Fprintf(g.stderr, "linkops: %v (retrying)\n", err)
				break
			}
			for _, it := range out.Items {
				id, _ := it["id"].(string)
				if _, dup := seen[id]; dup {
					continue
				}
				t, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(it[timeField]))
				seen[id] = t
				fresh = append(fresh, it)
			}
			if len(out.Items) < 500 {
				break
			}
		}
		slices.SortStableFunc(fresh, func(a, b map[string]any) int {
			return strings.Compare(fmt.Sprint(a[timeField]), fmt.Sprint(b[timeField]))
		})
		for _, it := range fresh {
			if t := seen[fmt.Sprint(it["id"])]; t.After(since) {
				since = t
			}
		}
		for id, t := range seen { // forget what can no longer come back
			if t.Before(since.Add(-2 * followOverlap)) {
				delete(seen, id)
			}
		}
		if len(fresh) > 0 {
			if g.output == "json" {
				for _, it := range fresh {
					_ = g.print(it, nil)
				}
			} else {
				_ = writeRows(g.stdout, fresh, logColumns[kind], first)
				first = false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// warnMissing says which nodes did not answer, so a short list is never mistaken for all.
func warnMissing(g *globals, out map[string]any) {
	missing, _ := out["missing"].([]any)
	for _, m := range missing {
		if mm, ok := m.(map[string]any); ok {
			fmt.Fprintf(g.stderr, "warning: node %v did not answer: %v\n", mm["serverId"], mm["error"])
		}
	}
}
