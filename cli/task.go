package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/linkops/linkops/client"
)

const taskPath = "/api/v1/upgrade-tasks"

var taskColumns = []column{{"ID", "id"}, {"NAME", "name"}, {"FIRMWARE", "firmwareId"}, {"MODE", "mode"}, {"STATE", "state"},
	{"WAITING", "counts.waiting"}, {"PROCESSING", "counts.processing"}, {"SUCCESS", "counts.success"},
	{"FAILED", "counts.failed"}, {"CANCELED", "counts.canceled"}, {"PROGRESS %", "progress"}}

var taskDeviceColumns = []column{{"DEVICE", "deviceId"}, {"STATE", "state"}, {"PROGRESS %", "progress"}, {"ERROR", "errorReason"},
	{"CREATED", "createdAt"}, {"UPGRADED", "upgradeTime"}, {"COMPLETED", "completeTime"}}

// Errors of `linkops task watch` for a task that ended without completing.
var (
	ErrTaskAborted = errors.New("task aborted")
	ErrTaskStopped = errors.New("task stopped")
)

// taskCmd is `linkops task`: the generic list, get, update and delete of upgrade tasks,
// plus create, show, devices, stop, resume, retry and watch (SPEC §4.8).
func taskCmd(g *globals) *cobra.Command {
	cmd := resourceCmds(g, "task", "Manage firmware upgrade tasks (OTA campaigns)", taskPath, taskColumns)
	cmd.Aliases = []string{"tasks", "upgrade-task", "upgrade-tasks"}
	addListFilter(cmd, "firmware", "firmwareId", "only tasks of this firmware")
	addListFilter(cmd, "product", "productId", "only tasks of this product")
	addListFilter(cmd, "state", "state", "only tasks in this state: running, stopped, completed or aborted")
	addListFilter(cmd, "mode", "mode", "only tasks of this mode: push or pull")
	update := writeCmd(g, opResource{use: "task", path: taskPath, cols: taskColumns}, "update")
	update.Short = "Edit a task's settings (timeouts, rollout, abort, name, description; never its devices or firmware)"
	update.Example = "  linkops task update --id t1 --set rollout.maxInFlight=20 --set abort='{\"failurePercent\":10,\"minFinished\":50}'"
	cmd.AddCommand(update, taskCreateCmd(g), taskShowCmd(g), taskDevicesCmd(g), taskWatchCmd(g))
	for _, a := range []struct{ verb, short string }{
		{"stop", "Stop a task: waiting devices are canceled and nothing more is sent (devices already processing go on)"},
		{"resume", "Resume a stopped or aborted task: canceled devices wait again"},
		{"retry", "Retry a push task's failed devices: they wait again and the task runs"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: a.verb + " ID", Short: a.short, Args: cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				return g.send(http.MethodPost, taskPath+"/"+url.PathEscape(args[0])+"/"+a.verb, nil, taskColumns)
			},
		})
	}
	return cmd
}

func taskCreateCmd(g *globals) *cobra.Command {
	var file, id, name, firmware, mode, desc string
	var devices []string
	var responseTimeout, timeout time.Duration
	var maxInFlight, maxPerMinute, failurePercent, minFinished int
	c := &cobra.Command{
		Use:   "create",
		Short: "Create an upgrade task: install a firmware on devices of its product",
		Example: "  linkops task create --firmware fw-120 --name 'meters to 1.2.0'\n" +
			"  linkops task create --firmware fw-120 --name canary --device m001 --device m002 --max-in-flight 1\n" +
			"  linkops task create --firmware fw-120 --name wave1 --max-per-minute 600 --abort-failure-percent 5 --abort-min-finished 100",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := bodyFromFile(g, file)
			if err != nil {
				return err
			}
			changed := cmd.Flags().Changed
			setIf(body, "id", id)
			setIf(body, "name", name)
			setIf(body, "firmwareId", firmware)
			setIf(body, "description", desc)
			if changed("mode") || body["mode"] == nil {
				body["mode"] = mode
			}
			if body["name"] == nil {
				return errors.New("--name is required")
			}
			if body["firmwareId"] == nil {
				return errors.New("--firmware is required")
			}
			for flag, field := range map[string]string{"response-timeout": "responseTimeoutSeconds", "timeout": "timeoutSeconds"} {
				if !changed(flag) {
					continue
				}
				d := timeout
				if flag == "response-timeout" {
					d = responseTimeout
				}
				if d < time.Second || d%time.Second != 0 {
					return fmt.Errorf("--%s %s: give whole seconds, at least 1s", flag, d)
				}
				body[field] = int(d / time.Second)
			}
			if changed("device") {
				body["deviceIds"] = devices
			}
			rollout := map[string]any{}
			if changed("max-in-flight") {
				rollout["maxInFlight"] = maxInFlight
			}
			if changed("max-per-minute") {
				rollout["maxPerMinute"] = maxPerMinute
			}
			if len(rollout) > 0 {
				body["rollout"] = rollout
			}
			if changed("abort-failure-percent") {
				body["abort"] = map[string]any{"failurePercent": failurePercent, "minFinished": minFinished}
			}
			return g.send(http.MethodPost, taskPath, body, taskColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "JSON body to start from ('-' for standard input); flags override it")
	f.StringVar(&id, "id", "", "id of the new task (generated when empty)")
	f.StringVar(&name, "name", "", "name, at most 64 characters (required)")
	f.StringVar(&firmware, "firmware", "", "id of the firmware to install (required)")
	f.StringVar(&mode, "mode", "push", "push (the platform sends the upgrade) or pull (devices ask for it)")
	f.StringSliceVar(&devices, "device", nil, "device to upgrade (repeatable, or comma-separated; default: every device of the firmware's product)")
	f.DurationVar(&responseTimeout, "response-timeout", 30*time.Second, "push only: a device that neither replies nor reports progress within it fails")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "a device that does not complete the upgrade within it fails")
	f.IntVar(&maxInFlight, "max-in-flight", 100, "devices processing at once")
	f.IntVar(&maxPerMinute, "max-per-minute", 0, "pushes sent in any minute (0: unlimited)")
	f.IntVar(&failurePercent, "abort-failure-percent", 0, "abort the task once this percentage (1-100) of finished devices failed (with --abort-min-finished)")
	f.IntVar(&minFinished, "abort-min-finished", 0, "judge --abort-failure-percent only once this many devices finished")
	f.StringVar(&desc, "description", "", "description, at most 200 characters")
	c.MarkFlagsRequiredTogether("abort-failure-percent", "abort-min-finished")
	return c
}

func taskShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a task: its state, the devices in each state, progress and why it aborted",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := g.ctx()
			defer cancel()
			var raw json.RawMessage
			if _, err := g.client().Do(ctx, http.MethodGet, taskPath+"/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(raw, nil)
			}
			var t map[string]any
			if err := json.Unmarshal(raw, &t); err != nil {
				return err
			}
			return writeRows(g.stdout, taskFacts(t), []column{{"FIELD", "field"}, {"VALUE", "value"}}, false)
		},
	}
}

// taskFacts lists a task as field/value rows, in the order an operator reads them.
func taskFacts(t map[string]any) []map[string]any {
	var rows []map[string]any
	add := func(field string, v any) {
		if s := cell(v); s != "-" {
			rows = append(rows, map[string]any{"field": field + ":", "value": s})
		}
	}
	add("ID", t["id"])
	add("Name", t["name"])
	add("Firmware", t["firmwareId"])
	add("Product", t["productId"])
	add("Mode", t["mode"])
	add("State", t["state"])
	if p, ok := t["progress"].(float64); ok {
		add("Progress", fmt.Sprintf("%.0f%%", p))
	}
	counts, _ := t["counts"].(map[string]any)
	for _, s := range []string{"waiting", "processing", "success", "failed", "canceled"} {
		add("  "+s, counts[s])
	}
	add("Abort reason", t["abortReason"])
	if s, ok := t["responseTimeoutSeconds"].(float64); ok && s > 0 {
		add("Response timeout", (time.Duration(s) * time.Second).String())
	}
	if s, ok := t["timeoutSeconds"].(float64); ok && s > 0 {
		add("Timeout", (time.Duration(s) * time.Second).String())
	}
	add("Rollout", t["rollout"])
	add("Abort", t["abort"])
	add("Description", t["description"])
	add("Created", shortTime(t["createdAt"]))
	add("Completed", shortTime(t["completedAt"]))
	return rows
}

func taskDevicesCmd(g *globals) *cobra.Command {
	var state string
	var page, pageSize int
	c := &cobra.Command{
		Use:   "devices ID",
		Short: "List a task's devices with their state, progress and error",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := taskPath + "/" + url.PathEscape(args[0]) + "/devices" +
				client.Query("state", state, "page", strconv.Itoa(page), "pageSize", strconv.Itoa(pageSize))
			_, err := g.pagedTable(path, page, taskDeviceColumns, "createdAt", "upgradeTime", "completeTime")
			return err
		},
	}
	c.Flags().StringVar(&state, "state", "", "only devices in this state: waiting, processing, success, failed or canceled")
	c.Flags().IntVar(&page, "page", 1, "page number")
	c.Flags().IntVar(&pageSize, "page-size", 20, "devices per page (at most 500)")
	return c
}

func taskWatchCmd(g *globals) *cobra.Command {
	var interval time.Duration
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a task until it completes (exit 0), aborts or is stopped (exit 1); Ctrl-C to leave",
		Long: "Follow a task: a line each time its counts change, until it completes (exit 0), aborts (exit 1, with the\n" +
			"reason) or is stopped (exit 1). With -o json each line is the task as JSON.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return errors.New("--interval must be positive")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return g.watchTask(ctx, args[0], interval)
		},
	}
	c.Flags().DurationVar(&interval, "interval", time.Second, "how often to ask")
	return c
}

// watchedTask is what a watch line shows.
type watchedTask struct {
	State  string `json:"state"`
	Counts struct {
		Waiting    int `json:"waiting"`
		Processing int `json:"processing"`
		Success    int `json:"success"`
		Failed     int `json:"failed"`
		Canceled   int `json:"canceled"`
	} `json:"counts"`
	Progress    int    `json:"progress"`
	AbortReason string `json:"abortReason"`
}

func (t watchedTask) line() string {
	c := t.Counts
	return fmt.Sprintf("%s  waiting %d  processing %d  success %d  failed %d  canceled %d  %d%%",
		t.State, c.Waiting, c.Processing, c.Success, c.Failed, c.Canceled, t.Progress)
}

// watchTask polls the task and prints it when what a line shows changes, until the task
// ends or ctx does (Ctrl-C: no error). A node that cannot answer for a while (restarting,
// electing a leader) is waited for; a refusal (no such task, no token) ends the watch.
func (g *globals) watchTask(ctx context.Context, id string, interval time.Duration) error {
	c := g.client()
	path := taskPath + "/" + url.PathEscape(id)
	var last, lastErr string
	for {
		var raw json.RawMessage
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := c.Do(cctx, http.MethodGet, path, nil, &raw)
		cancel()
		var t watchedTask
		if err == nil {
			err = json.Unmarshal(raw, &t)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			var p *client.Problem
			if errors.As(err, &p) && p.Status < 500 {
				return err
			}
			if err.Error() != lastErr {
				fmt.Fprintf(g.stderr, "warning: %v (asking again)\n", err)
				lastErr = err.Error()
			}
		default:
			lastErr = ""
			if line := t.line(); line != last {
				last = line
				if g.output == "json" {
					var b bytes.Buffer
					if err := json.Compact(&b, raw); err != nil {
						return err
					}
					fmt.Fprintln(g.stdout, b.String())
				} else {
					fmt.Fprintln(g.stdout, line)
				}
			}
			switch t.State {
			case "completed":
				return nil
			case "aborted":
				return fmt.Errorf("%w: %s", ErrTaskAborted, t.AbortReason)
			case "stopped":
				return fmt.Errorf("%w: resume it with `linkops task resume %s`", ErrTaskStopped, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
