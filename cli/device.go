package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

// deviceCmds are the device commands beyond the generic ones: the downlinks (read, write,
// invoke), the message stream (watch), disconnect (SPEC §4.6) and a GB/T 28181 device's
// channels.
func deviceCmds(g *globals, r opResource) []*cobra.Command {
	return []*cobra.Command{deviceReadCmd(g, r), deviceWriteCmd(g, r), deviceInvokeCmd(g, r),
		deviceWatchCmd(g, r), deviceDisconnectCmd(g, r), deviceChannelsCmd(g, r)}
}

const timeoutUsage = "how long to wait for the device's answer, e.g. 5s (default: the node's, 10s; at most 60s)"

// downlinkCmd completes a downlink command: its --timeout flag, handed to run.
func downlinkCmd(c *cobra.Command, run func(args []string, timeout time.Duration) error) *cobra.Command {
	var timeout time.Duration
	c.RunE = func(_ *cobra.Command, args []string) error { return run(args, timeout) }
	c.Flags().DurationVar(&timeout, "timeout", 0, timeoutUsage)
	return c
}

func deviceReadCmd(g *globals, r opResource) *cobra.Command {
	return downlinkCmd(&cobra.Command{
		Use:     "read ID PROPERTY...",
		Short:   "Read properties from the device, wherever it is connected",
		Example: "  linkops device read meter-1 temp mode",
		Args:    cobra.MinimumNArgs(2),
	}, func(args []string, timeout time.Duration) error {
		names := args[1:]
		return g.downlink(devicePath(r, args[0], "properties/read"), timeout, map[string]any{"properties": names},
			func(reply downlinkReply) error { return g.printProperties(reply.Properties, names) })
	})
}

func deviceWriteCmd(g *globals, r opResource) *cobra.Command {
	return downlinkCmd(&cobra.Command{
		Use:     "write ID NAME=VALUE...",
		Short:   "Write properties to the device (a value is JSON when it parses as JSON, else text)",
		Example: "  linkops device write meter-1 setpoint=21.5 mode=eco enabled=true label='\"007\"'",
		Args:    cobra.MinimumNArgs(2),
	}, func(args []string, timeout time.Duration) error {
		props, err := parseAssignments(args[1:])
		if err != nil {
			return err
		}
		return g.downlink(devicePath(r, args[0], "properties/write"), timeout, map[string]any{"properties": props},
			func(reply downlinkReply) error { return g.printProperties(reply.Properties, nil) })
	})
}

func deviceInvokeCmd(g *globals, r opResource) *cobra.Command {
	return downlinkCmd(&cobra.Command{
		Use:     "invoke ID FUNCTION [NAME=VALUE...]",
		Short:   "Call a function of the device with its inputs (a value is JSON when it parses as JSON, else text)",
		Example: "  linkops device invoke meter-1 reboot delay=5 mode=soft",
		Args:    cobra.MinimumNArgs(2),
	}, func(args []string, timeout time.Duration) error {
		inputs, err := parseAssignments(args[2:])
		if err != nil {
			return err
		}
		return g.downlink(devicePath(r, args[0], "functions/"+url.PathEscape(args[1])), timeout, map[string]any{"inputs": inputs},
			func(reply downlinkReply) error { return g.printOutput(args[1], reply.Output) })
	})
}

// printOutput prints a function's output: text as it is, anything else as indented JSON.
func (g *globals) printOutput(function string, output json.RawMessage) error {
	if len(output) == 0 || string(output) == "null" {
		fmt.Fprintf(g.stdout, "Called %s (no output)\n", function)
		return nil
	}
	var s string
	if json.Unmarshal(output, &s) == nil {
		fmt.Fprintln(g.stdout, s)
		return nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, output, "", "  "); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, out.String())
	return nil
}

func deviceDisconnectCmd(g *globals, r opResource) *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect ID",
		Short: "Close the device's session, wherever it is connected (the device may connect again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			if _, err := g.client().Do(ctx, http.MethodDelete, devicePath(r, args[0], "session"), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Disconnected device %s\n", args[0])
			return nil
		},
	}
}

// deviceWatchCmd is `linkops device watch ID`: the device's messages up and down, from
// whichever node holds it (the stream follows the device when it moves), until Ctrl-C.
func deviceWatchCmd(g *globals, r opResource) *cobra.Command {
	return &cobra.Command{
		Use:   "watch ID",
		Short: "Follow the device's messages up and down, from whichever node holds it (Ctrl-C to stop)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.followEvents(devicePath(r, args[0], "messages"), "message stream", messageLine)
		},
	}
}

// followEvents prints a server-sent event stream of the API, one line per event (line's
// rendering, or {"event","data"} with -o json), until Ctrl-C.
func (g *globals) followEvents(path, what string, line func(event, data string) string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	resp, err := g.client().Raw(ctx, http.MethodGet, path, nil, "", nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	return followSSE(ctx, resp.Body, what, func(event, data string) {
		if g.output == "json" {
			fmt.Fprintf(g.stdout, "{\"event\":%q,\"data\":%s}\n", event, data)
		} else {
			fmt.Fprintln(g.stdout, line(event, data))
		}
	})
}

func devicePath(r opResource, id, sub string) string {
	return r.path + "/" + url.PathEscape(id) + "/" + sub
}

// downlinkReply is the part of the API's answer to a downlink the table shows; -o json
// prints the answer as it came.
type downlinkReply struct {
	Success    bool            `json:"success"`
	Properties map[string]any  `json:"properties"`
	Output     json.RawMessage `json:"output"`
	Code       string          `json:"code"`
	Message    string          `json:"message"`
}

// downlink sends one downlink and shows the device's reply. A reply with success false is
// an error after it is shown, so that a script sees the refusal in the exit code.
func (g *globals) downlink(path string, timeout time.Duration, body any, show func(downlinkReply) error) error {
	if timeout != 0 {
		path += client.Query("timeout", timeout.String())
	}
	ctx, cancel := g.ctx()
	defer cancel()
	var raw json.RawMessage
	if _, err := g.client().Do(ctx, http.MethodPost, path, body, &raw); err != nil {
		return err
	}
	var reply downlinkReply
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // an integer property keeps every digit
	if err := dec.Decode(&reply); err != nil {
		return fmt.Errorf("decode the device's reply: %w", err)
	}
	if g.output == "json" {
		if err := g.print(raw, nil); err != nil {
			return err
		}
	} else if reply.Success {
		if err := show(reply); err != nil {
			return err
		}
	}
	if !reply.Success {
		msg := "the device answered success=false"
		if reply.Code != "" {
			msg += ", code " + reply.Code
		}
		if reply.Message != "" {
			msg += ": " + reply.Message
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// printProperties shows property values as a two-column table, in the order asked (a
// name the device left out shows as "-"), then any others by name.
func (g *globals) printProperties(props map[string]any, asked []string) error {
	names := append([]string(nil), asked...)
	seen := map[string]bool{}
	for _, n := range asked {
		seen[n] = true
	}
	var rest []string
	for k := range props {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)
	rows := make([]map[string]any, len(names))
	for i, n := range names {
		v := "-"
		if pv, ok := props[n]; ok {
			v = valueText(pv)
		}
		rows[i] = map[string]any{"name": n, "value": v}
	}
	return writeRows(g.stdout, rows, []column{{"PROPERTY", "name"}, {"VALUE", "value"}}, true)
}

// parseAssignments reads NAME=VALUE arguments into an object. A value is JSON when it
// parses as JSON (21.5, true, "007", {"a":1}), else the text as given (eco, 007).
func parseAssignments(args []string) (map[string]any, error) {
	out := make(map[string]any, len(args))
	for _, a := range args {
		k, raw, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want NAME=VALUE, e.g. temp=21.5 or mode=eco", a)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%q: %s is given twice", a, k)
		}
		var v any = raw
		if json.Valid([]byte(raw)) {
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber() // 12345678901234567890 is sent as written, not rounded to a float
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("%q: %w", a, err)
			}
		}
		out[k] = v
	}
	return out, nil
}

// followSSE calls each for every event of a server-sent event stream until ctx ends
// (nil: the user stopped it) or the stream does (an error: the user did not ask for that).
func followSSE(ctx context.Context, body io.Reader, what string, each func(event, data string)) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			each(event, strings.TrimPrefix(line, "data: "))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the %s broke: %w", what, err)
	}
	return fmt.Errorf("the node closed the %s", what)
}

// messageLine renders one event of a device's stream for people: time, node, direction,
// type, topic, then the message's own fields.
func messageLine(event, data string) string {
	var d map[string]any
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&d) != nil {
		return event + " " + data
	}
	s := func(k string) string { v, _ := d[k].(string); return v }
	switch event {
	case "ready":
		nodes := cell(d["nodes"])
		if nodes == "" {
			nodes = "no node"
		}
		line := "watching on " + nodes
		if m := missingText(d["missing"]); m != "" {
			line += "; no stream from " + m + " (messages through there are not shown)"
		}
		return line
	case "dropped":
		line := fmt.Sprintf("dropped %v messages (this reader was too slow)", d["count"])
		if n := s("serverId"); n != "" {
			line += " on " + n
		}
		return line
	case "message":
	default:
		return event + " " + data
	}
	parts := []string{s("time"), s("serverId"), s("direction"), s("type")}
	if t := s("topic"); t != "" {
		parts = append(parts, t)
	}
	msg, _ := d["message"].(map[string]any)
	keys := make([]string, 0, len(msg))
	for k := range msg {
		switch k {
		case "type", "deviceId", "timestamp":
			// Already on the line, or the device's own clock: -o json has them.
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+valueText(msg[k]))
	}
	return strings.Join(parts, " ")
}
