package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// taskState builds one answer of GET /upgrade-tasks/{id}.
func taskState(state string, waiting, processing, success, failed, canceled, progress int, abortReason string) map[string]any {
	t := map[string]any{"id": "t1", "name": "wave", "firmwareId": "fw1", "mode": "push", "state": state, "progress": progress,
		"counts": map[string]any{"waiting": waiting, "processing": processing, "success": success, "failed": failed, "canceled": canceled}}
	if abortReason != "" {
		t["abortReason"] = abortReason
	}
	return t
}

// taskSequence answers GET /upgrade-tasks/t1 with the next of its answers (the last one
// again once they run out); an answer that is a status code is a problem instead.
type taskSequence struct {
	mu      sync.Mutex
	answers []any
	polls   int
	onPoll  func(n int) // called with the poll's number (1-based) before it is answered
}

func (s *taskSequence) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	if r.URL.Path != "/api/v1/upgrade-tasks/t1" {
		writeProblem(w, http.StatusNotFound, "not_found", "no task "+r.URL.Path)
		return
	}
	s.mu.Lock()
	s.polls++
	n := s.polls
	a := s.answers[min(n, len(s.answers))-1]
	s.mu.Unlock()
	if s.onPoll != nil {
		s.onPoll(n)
	}
	if status, ok := a.(int); ok {
		if status == http.StatusNotFound {
			writeProblem(w, status, "not_found", "no task t1")
		} else {
			writeProblem(w, status, "no_leader", "electing")
		}
		return
	}
	_ = json.NewEncoder(w).Encode(a)
}

func TestTaskWatch(t *testing.T) {
	running := func(w, p, s, f, pct int) map[string]any { return taskState("running", w, p, s, f, 0, pct, "") }
	for _, tc := range []struct {
		name      string
		answers   []any
		wantLines []string
		wantErr   error
		wantText  string // in the error
		wantWarn  string // on stderr
	}{
		{
			name: "completed",
			answers: []any{running(100, 0, 0, 0, 0), running(100, 0, 0, 0, 0), running(90, 10, 0, 0, 0),
				running(10, 5, 80, 5, 85), running(10, 5, 80, 5, 85), taskState("completed", 0, 0, 95, 5, 0, 100, "")},
			wantLines: []string{
				"running  waiting 100  processing 0  success 0  failed 0  canceled 0  0%",
				"running  waiting 90  processing 10  success 0  failed 0  canceled 0  0%",
				"running  waiting 10  processing 5  success 80  failed 5  canceled 0  85%",
				"completed  waiting 0  processing 0  success 95  failed 5  canceled 0  100%",
			},
		},
		{
			name:    "aborted",
			answers: []any{running(50, 10, 20, 20, 40), taskState("aborted", 0, 0, 20, 25, 55, 100, "25 of 45 finished devices failed (55%), at or above 50%")},
			wantLines: []string{
				"running  waiting 50  processing 10  success 20  failed 20  canceled 0  40%",
				"aborted  waiting 0  processing 0  success 20  failed 25  canceled 55  100%",
			},
			wantErr: ErrTaskAborted, wantText: "25 of 45 finished devices failed (55%), at or above 50%",
		},
		{
			name:      "stopped",
			answers:   []any{taskState("stopped", 0, 2, 3, 0, 5, 80, "")},
			wantLines: []string{"stopped  waiting 0  processing 2  success 3  failed 0  canceled 5  80%"},
			wantErr:   ErrTaskStopped, wantText: "linkops task resume t1",
		},
		{
			name:    "a node electing a leader is waited for",
			answers: []any{running(1, 0, 0, 0, 0), http.StatusServiceUnavailable, http.StatusServiceUnavailable, taskState("completed", 0, 0, 1, 0, 0, 100, "")},
			wantLines: []string{
				"running  waiting 1  processing 0  success 0  failed 0  canceled 0  0%",
				"completed  waiting 0  processing 0  success 1  failed 0  canceled 0  100%",
			},
			wantWarn: "warning: 503 no_leader: electing (asking again)\n",
		},
		{
			name:     "a refusal ends it",
			answers:  []any{http.StatusNotFound},
			wantText: "404 not_found: no task t1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&taskSequence{answers: tc.answers})
			defer srv.Close()
			stdout, stderr, err := execCLI(t, context.Background(), srv.URL, "task", "watch", "t1", "--interval", "1ms")
			var got []string
			if stdout != "" {
				got = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			}
			if !reflect.DeepEqual(got, tc.wantLines) {
				t.Errorf("lines:\n%s\nwant:\n%s", stdout, strings.Join(tc.wantLines, "\n"))
			}
			switch {
			case tc.wantErr == nil && tc.wantText == "":
				if err != nil {
					t.Errorf("error %v; want none (exit 0)", err)
				}
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("error %v; want %v", err, tc.wantErr)
			}
			if tc.wantText != "" && (err == nil || !strings.Contains(err.Error(), tc.wantText)) {
				t.Errorf("error %v; want it to say %q", err, tc.wantText)
			}
			if stderr != tc.wantWarn {
				t.Errorf("stderr %q; want %q", stderr, tc.wantWarn)
			}
		})
	}
}

func TestTaskWatchJSON(t *testing.T) {
	srv := httptest.NewServer(&taskSequence{answers: []any{taskState("running", 1, 0, 0, 0, 0, 0, ""), taskState("completed", 0, 0, 1, 0, 0, 100, "")}})
	defer srv.Close()
	stdout, _, err := execCLI(t, context.Background(), srv.URL, "task", "watch", "t1", "--interval", "1ms", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var states []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		states = append(states, m["state"].(string))
	}
	if !reflect.DeepEqual(states, []string{"running", "completed"}) {
		t.Errorf("states %v; want running, completed", states)
	}
}

// TestTaskWatchInterrupted leaves a running task's watch without an error, as Ctrl-C does.
func TestTaskWatchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seq := &taskSequence{answers: []any{taskState("running", 3, 0, 0, 0, 0, 0, "")}}
	seq.onPoll = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	srv := httptest.NewServer(seq)
	defer srv.Close()
	stdout, _, err := execCLI(t, ctx, srv.URL, "task", "watch", "t1", "--interval", "1ms")
	if err != nil {
		t.Fatalf("interrupted watch: %v; want no error", err)
	}
	if want := "running  waiting 3  processing 0  success 0  failed 0  canceled 0  0%\n"; stdout != want {
		t.Errorf("stdout %q; want %q", stdout, want)
	}
}

// recordingAPI answers every request with reply, keeping the method, path, query and
// JSON body of the last one.
type recordingAPI struct {
	reply                     any
	method, path, query, body string
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	b, _ := io.ReadAll(r.Body)
	a.method, a.path, a.query, a.body = r.Method, r.URL.Path, r.URL.RawQuery, string(b)
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && r.URL.Path == taskPath {
		w.WriteHeader(http.StatusCreated)
	}
	_ = json.NewEncoder(w).Encode(a.reply)
}

func TestTaskCreateBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want map[string]any
	}{
		{
			name: "defaults are the server's",
			args: []string{"--firmware", "fw1", "--name", "all meters"},
			want: map[string]any{"firmwareId": "fw1", "name": "all meters", "mode": "push"},
		},
		{
			name: "every flag",
			args: []string{"--firmware", "fw1", "--name", "canary", "--id", "t1", "--mode", "pull", "--device", "m1", "--device", "m2,m3",
				"--response-timeout", "45s", "--timeout", "20m", "--max-in-flight", "5", "--max-per-minute", "60",
				"--abort-failure-percent", "10", "--abort-min-finished", "50", "--description", "first wave"},
			want: map[string]any{"id": "t1", "firmwareId": "fw1", "name": "canary", "mode": "pull", "deviceIds": []any{"m1", "m2", "m3"},
				"responseTimeoutSeconds": float64(45), "timeoutSeconds": float64(1200),
				"rollout": map[string]any{"maxInFlight": float64(5), "maxPerMinute": float64(60)},
				"abort":   map[string]any{"failurePercent": float64(10), "minFinished": float64(50)}, "description": "first wave"},
		},
		{
			name: "one rollout limit",
			args: []string{"--firmware", "fw1", "--name", "slow", "--max-per-minute", "10"},
			want: map[string]any{"firmwareId": "fw1", "name": "slow", "mode": "push", "rollout": map[string]any{"maxPerMinute": float64(10)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &recordingAPI{reply: taskState("running", 3, 0, 0, 0, 0, 0, "")}
			srv := httptest.NewServer(api)
			defer srv.Close()
			stdout, _, err := execCLI(t, context.Background(), srv.URL, append([]string{"task", "create"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(api.body), &got); err != nil || api.method != http.MethodPost || api.path != taskPath {
				t.Fatalf("%s %s %q (%v); want a JSON POST to %s", api.method, api.path, api.body, err, taskPath)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("body %s\nwant %v", api.body, tc.want)
			}
			if !strings.Contains(stdout, "PROGRESS %") || !strings.Contains(stdout, "t1") {
				t.Errorf("table:\n%s", stdout)
			}
		})
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x"}, "--firmware is required"},
		{[]string{"--firmware", "fw1"}, "--name is required"},
		{[]string{"--firmware", "fw1", "--name", "x", "--timeout", "1500ms"}, "--timeout 1.5s: give whole seconds"},
		{[]string{"--firmware", "fw1", "--name", "x", "--abort-failure-percent", "10"}, "abort-min-finished"},
	} {
		_, _, err := execCLI(t, context.Background(), "http://127.0.0.1:1", append([]string{"task", "create"}, bad.args...)...)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("create %v: %v; want an error containing %q", bad.args, err, bad.want)
		}
	}
}

func TestTaskActions(t *testing.T) {
	api := &recordingAPI{reply: taskState("stopped", 0, 1, 2, 0, 7, 90, "")}
	srv := httptest.NewServer(api)
	defer srv.Close()
	for _, verb := range []string{"stop", "resume", "retry"} {
		stdout, _, err := execCLI(t, context.Background(), srv.URL, "task", verb, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if api.method != http.MethodPost || api.path != taskPath+"/t1/"+verb {
			t.Errorf("task %s sent %s %s; want POST %s/t1/%s", verb, api.method, api.path, taskPath, verb)
		}
		if !strings.Contains(stdout, "stopped") {
			t.Errorf("task %s printed:\n%s", verb, stdout)
		}
	}

	api.reply = taskState("aborted", 0, 0, 2, 8, 5, 100, "8 of 10 finished devices failed")
	stdout, _, err := execCLI(t, context.Background(), srv.URL, "task", "show", "t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"aborted", "100%", "8 of 10 finished devices failed", "failed:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("task show lacks %q:\n%s", want, stdout)
		}
	}
	if api.method != http.MethodGet || api.path != taskPath+"/t1" {
		t.Errorf("task show sent %s %s", api.method, api.path)
	}
}

func TestTaskDevices(t *testing.T) {
	api := &recordingAPI{reply: map[string]any{"items": []any{
		map[string]any{"deviceId": "m1", "state": "failed", "progress": 40, "errorReason": "no response within 30s",
			"createdAt": "2025-01-02T03:04:05.123Z", "upgradeTime": "2025-01-02T03:05:00Z"},
	}, "total": 1, "page": 2, "pageSize": 5}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	stdout, _, err := execCLI(t, context.Background(), srv.URL, "task", "devices", "t1", "--state", "failed", "--page", "2", "--page-size", "5")
	if err != nil {
		t.Fatal(err)
	}
	if api.path != taskPath+"/t1/devices" || api.query != "page=2&pageSize=5&state=failed" {
		t.Errorf("asked %s?%s", api.path, api.query)
	}
	for _, want := range []string{"DEVICE", "ERROR", "m1", "failed", "no response within 30s", "2025-01-02T03:04:05Z", "(1 in all, page 2)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}
