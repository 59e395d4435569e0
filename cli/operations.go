package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// opResource describes one of the operations resources for the generic commands.
type opResource struct {
	use, alias, short, path string
	cols                    []column
	stateful                bool
	// flags are the top-level string fields that get their own flag on create and update.
	flags []string
}

var opResources = []opResource{
	{use: "network", alias: "network-components", short: "Manage network components (MQTT, TCP, UDP, CoAP, HTTP, WebSocket listeners and MQTT clients)",
		path: "/api/v1/network-components", stateful: true, flags: []string{"type"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"TYPE", "type"}, {"STATE", "state"}, {"SHARED", "shareCluster"}, {"PORT", "configuration.port"}, {"UPDATED", "updatedAt"}}},
	{use: "protocol", alias: "protocols", short: "Manage protocols (device message codecs)",
		path: "/api/v1/protocols", flags: []string{"type"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"TYPE", "type"}, {"VERSION", "manifest.version"}, {"TRANSPORTS", "manifest.transports"}, {"UPDATED", "updatedAt"}}},
	{use: "gateway", alias: "gateways", short: "Manage device access gateways",
		path: "/api/v1/gateways", stateful: true, flags: []string{"provider", "channelId", "protocol"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"PROVIDER", "provider"}, {"TRANSPORT", "transport"}, {"CHANNEL", "channelId"}, {"PROTOCOL", "protocol"}, {"STATE", "state"}}},
	{use: "media", alias: "media-servers", short: "Manage streaming media servers",
		path: "/api/v1/media-servers", stateful: true, flags: []string{"provider"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"PROVIDER", "provider"}, {"API HOST", "configuration.apiHost"}, {"RTP IP", "configuration.rtpIp"}, {"STATE", "state"}}},
	{use: "product", alias: "products", short: "Manage products",
		path: "/api/v1/products", flags: []string{"gatewayId", "secureId", "secureKey"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"GATEWAY", "gatewayId"}, {"SECURE ID", "secureId"}, {"UPDATED", "updatedAt"}}},
	{use: "device", alias: "devices", short: "Manage devices",
		path: "/api/v1/devices", flags: []string{"productId"},
		cols: []column{{"ID", "id"}, {"NAME", "name"}, {"PRODUCT", "productId"}, {"STATE", "state"}, {"NODE", "serverId"}, {"FIRMWARE", "firmwareVersion"}, {"PROPERTIES", "properties"}}},
}

// operationCmds builds list|get|create|update|delete (and enable|disable) for every
// operations resource.
func operationCmds(g *globals) []*cobra.Command {
	var out []*cobra.Command
	for _, r := range opResources {
		cmd := resourceCmds(g, r.use, r.short, r.path, r.cols)
		cmd.Aliases = []string{r.alias}
		for _, verb := range []string{"create", "update"} {
			cmd.AddCommand(writeCmd(g, r, verb))
		}
		if r.stateful {
			for _, verb := range []string{"enable", "disable"} {
				cmd.AddCommand(&cobra.Command{
					Use: verb + " ID", Short: verb + " a " + r.use + " (idempotent)", Args: cobra.ExactArgs(1),
					RunE: func(_ *cobra.Command, args []string) error {
						return g.send(http.MethodPost, r.path+"/"+args[0]+"/"+verb, nil, r.cols)
					},
				})
			}
		}
		if r.use == "network" {
			cmd.AddCommand(networkStatusCmd(g), networkDebugCmd(g))
		}
		if r.use == "protocol" {
			cmd.AddCommand(protocolUploadCmd(g, r))
		}
		if r.use == "gateway" {
			cmd.AddCommand(gatewaySessionsCmd(g, r), gatewayStatusCmd(g, r))
		}
		if r.use == "device" {
			cmd.AddCommand(deviceBatchCmd(g, r))
			cmd.AddCommand(deviceCmds(g, r)...)
		}
		out = append(out, cmd)
	}
	return out
}

// writeCmd is create or update: a JSON body from -f, then flags, then --set path=value.
func writeCmd(g *globals, r opResource, verb string) *cobra.Command {
	var file, id, name, desc, state string
	var sets []string
	fields := map[string]*string{}
	c := &cobra.Command{
		Use:   verb,
		Short: verb + " a " + r.use + " from flags and/or a JSON file",
		Example: fmt.Sprintf("  linkops %s %s -f %s.json\n  linkops %s %s --name demo --set configuration.port=1883",
			r.use, verb, r.use, r.use, verb),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := bodyFromFile(g, file)
			if err != nil {
				return err
			}
			setIf(body, "id", id)
			setIf(body, "name", name)
			setIf(body, "description", desc)
			setIf(body, "state", state)
			for k, v := range fields {
				setIf(body, k, *v)
			}
			for _, kv := range sets {
				if err := setPath(body, kv); err != nil {
					return err
				}
			}
			if verb == "update" {
				return g.update(r.path+"/"+id, body, r.cols)
			}
			return g.send(http.MethodPost, r.path, body, r.cols)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "JSON body to start from ('-' for standard input)")
	c.Flags().StringVar(&id, "id", "", "id (create: optional, generated when empty; update: required)")
	c.Flags().StringVar(&name, "name", "", "name, at most 64 characters")
	c.Flags().StringVar(&desc, "description", "", "description, at most 200 characters")
	if r.stateful && verb == "create" {
		c.Flags().StringVar(&state, "state", "", "enabled or disabled (default disabled)")
	}
	for _, f := range r.flags {
		fields[f] = new(string)
		c.Flags().StringVar(fields[f], kebab(f), "", f)
	}
	c.Flags().StringArrayVar(&sets, "set", nil, "set a field by dotted path, e.g. configuration.port=1883 or cluster[0].serverId=node1 (value parsed as JSON when it can be)")
	if verb == "update" {
		_ = c.MarkFlagRequired("id")
	}
	return c
}

func kebab(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('-')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// setPath sets body[path] = value for "a.b[2].c=value"; the value is JSON when it parses
// as JSON (numbers, true, arrays), else a string.
func setPath(body map[string]any, kv string) error {
	path, raw, ok := strings.Cut(kv, "=")
	if !ok || path == "" {
		return fmt.Errorf("--set %q: want path=value", kv)
	}
	var value any = raw
	var parsed any
	if err := json.Unmarshal([]byte(raw), &parsed); err == nil {
		value = parsed
	}
	var cur any = body
	parts := strings.Split(strings.ReplaceAll(path, "[", ".["), ".")
	for i, p := range parts {
		last := i == len(parts)-1
		if strings.HasPrefix(p, "[") {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"))
			arr, ok := cur.([]any)
			if err != nil || !ok || n < 0 || n >= len(arr) {
				return fmt.Errorf("--set %q: %s is not an index of an existing list", kv, p)
			}
			if last {
				arr[n] = value
				return nil
			}
			cur = arr[n]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return fmt.Errorf("--set %q: %s is not inside an object", kv, p)
		}
		if last {
			m[p] = value
			return nil
		}
		next, exists := m[p]
		if !exists {
			if i+1 < len(parts) && strings.HasPrefix(parts[i+1], "[") {
				return fmt.Errorf("--set %q: %s is not a list yet; set it whole first, e.g. %s=[{}]", kv, p, p)
			}
			next = map[string]any{}
			m[p] = next
		}
		cur = next
	}
	return nil
}

// protocolUploadCmd uploads a package: a new protocol, or with --replace the code of an
// existing one.
func protocolUploadCmd(g *globals, r opResource) *cobra.Command {
	var id, name, desc, replace string
	c := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a protocol package (.zip with manifest.json and a JavaScript codec)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			zip, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			method, path := http.MethodPost, r.path
			if replace != "" {
				method, path = http.MethodPut, r.path+"/"+replace+"/package"
			} else {
				if name == "" {
					name = strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
				}
				for k, v := range map[string]string{"id": id, "name": name, "description": desc, "type": "package"} {
					if v != "" {
						_ = mw.WriteField(k, v)
					}
				}
			}
			fw, err := mw.CreateFormFile("file", filepath.Base(args[0]))
			if err != nil {
				return err
			}
			_, _ = fw.Write(zip)
			if err := mw.Close(); err != nil {
				return err
			}
			ctx, cancel := g.ctx()
			defer cancel()
			resp, err := g.client().Raw(ctx, method, path, &buf, mw.FormDataContentType(), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
				return err
			}
			return g.print(out, r.cols)
		},
	}
	c.Flags().StringVar(&id, "id", "", "id of the new protocol (generated when empty)")
	c.Flags().StringVar(&name, "name", "", "name (default: the file name)")
	c.Flags().StringVar(&desc, "description", "", "description")
	c.Flags().StringVar(&replace, "replace", "", "replace the code of this existing protocol instead of creating one")
	return c
}

// deviceBatchCmd creates many devices from a JSON array file.
func deviceBatchCmd(g *globals, r opResource) *cobra.Command {
	return &cobra.Command{
		Use:   "batch FILE",
		Short: "Create up to 10,000 devices from a JSON array, all or none ('-' for standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = io.ReadAll(g.stdin)
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			var devices []any
			if err := json.Unmarshal(b, &devices); err != nil {
				return fmt.Errorf("%s is not a JSON array: %w", args[0], err)
			}
			ctx, cancel := g.ctx()
			defer cancel()
			var out map[string]any
			if _, err := g.client().Do(ctx, http.MethodPost, r.path+"/batch", devices, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(out, r.cols)
			}
			fmt.Fprintf(g.stdout, "Created %v devices\n", out["total"])
			return nil
		},
	}
}
