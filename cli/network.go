package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

var statusColumns = []column{{"NODE", "serverId"}, {"STATE", "state"}, {"ADDRESS", "address"}, {"CONNECTIONS", "connections"}, {"SINCE", "since"}, {"ERROR", "error"}}

// networkStatusCmd is `linkops network status ID`: the component on every node.
func networkStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status ID", Short: "Show the component's state on every node (running, failed with the error, stopped, not_configured, unreachable)",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.nodeStatus("/api/v1/network-components/"+url.PathEscape(args[0])+"/status", statusColumns)
		},
	}
}

// nodeStatus GETs a status on every node ({items: [{serverId, state, ...}]}) and prints
// it as JSON or as a table of cols, since shown to the second; network and gateway status
// share it.
func (g *globals) nodeStatus(path string, cols []column) error {
	ctx, cancel := g.ctx()
	defer cancel()
	var out map[string]any
	if _, err := g.client().Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	if g.output != "json" {
		items, _ := out["items"].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				m["since"] = shortTime(m["since"])
			}
		}
	}
	return g.print(out, cols)
}

// networkDebugCmd is `linkops network debug ID`: follows the component's debug stream
// (网络组件调试) and prints one line per event until Ctrl-C.
func networkDebugCmd(g *globals) *cobra.Command {
	var node string
	c := &cobra.Command{
		Use:   "debug ID",
		Short: "Follow what the component receives on every node: connects, disconnects and messages (Ctrl-C to stop)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.followEvents("/api/v1/network-components/"+url.PathEscape(args[0])+"/debug"+client.Query("node", node), "debug stream", debugLine)
		},
	}
	c.Flags().StringVar(&node, "node", "", "only this node's events")
	return c
}

// debugLine renders one event for people: time, node, event, then what it says.
func debugLine(event, data string) string {
	var d map[string]any
	if json.Unmarshal([]byte(data), &d) != nil {
		return event + " " + data
	}
	s := func(k string) string { v, _ := d[k].(string); return v }
	switch event {
	case "ready":
		b, _ := json.Marshal(d["missing"])
		return fmt.Sprintf("ready: streaming from %v; missing %s", d["nodes"], b)
	case "dropped":
		return fmt.Sprintf("dropped %v events (this reader was too slow) %s", d["count"], s("serverId"))
	case "message":
		p := s("payloadHex")
		if len(p) > 128 {
			p = p[:128] + "…"
		}
		return fmt.Sprintf("%s %s message %s topic=%q size=%v %s", s("time"), s("serverId"), s("remote"), s("topic"), d["size"], p)
	}
	line := fmt.Sprintf("%s %s %s %s", s("time"), s("serverId"), event, s("remote"))
	if id := s("clientId"); id != "" {
		line += " clientId=" + id
	}
	if r := s("reason"); r != "" {
		line += " reason=" + r
	}
	return line
}
