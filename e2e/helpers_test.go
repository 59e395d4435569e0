package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/agentproc"
	"github.com/linkops/linkops/internal/testutil"
)

// Timeouts only bound hangs; they never judge speed.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 60 * time.Second
	cliTimeout   = 2 * time.Minute
)

// binPath is the linkops binary built by TestMain.
var binPath string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	root, err := agentproc.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: find module root:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "linkops-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "linkops")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/linkops")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/linkops: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// childEnv is this process's environment without any LINKOPS_* variable, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LINKOPS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freeAddr returns 127.0.0.1:PORT for a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// agent is a running `linkops agent` child process.
type agent struct {
	t        *testing.T
	cmd      *exec.Cmd
	httpAddr string
	stdout   *testutil.SyncBuffer
	stderr   *testutil.SyncBuffer
	done     chan struct{} // closed when the process has exited
	waitErr  error         // set before done is closed
}

// startAgent runs `linkops agent args...` in dir with httpAddr as the API address the test
// talks to (it must match --http-addr, or the default). Any process left at the end of the
// test is killed.
func startAgent(t *testing.T, dir, httpAddr string, args ...string) *agent {
	t.Helper()
	a := &agent{
		t:        t,
		cmd:      exec.Command(binPath, append([]string{"agent"}, args...)...),
		httpAddr: httpAddr,
		stdout:   &testutil.SyncBuffer{},
		stderr:   &testutil.SyncBuffer{},
		done:     make(chan struct{}),
	}
	a.cmd.Dir = dir
	a.cmd.Env = childEnv()
	a.cmd.Stdout = a.stdout
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start linkops agent: %v", err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		if !a.exited() {
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent %v\n--- stdout ---\n%s\n--- stderr ---\n%s", a.cmd.Args[1:], a.stdout.String(), a.stderr.String())
		}
	})
	return a
}

// startAgentOnFreePorts starts a node with its own data dir under dir and random loopback
// ports for every listener.
func startAgentOnFreePorts(t *testing.T, dataDir string, args ...string) *agent {
	t.Helper()
	httpAddr := freeAddr(t)
	all := append([]string{"--data-dir", dataDir,
		"--http-addr", httpAddr, "--raft-addr", freeAddr(t), "--gossip-addr", freeAddr(t)}, args...)
	return startAgent(t, t.TempDir(), httpAddr, all...)
}

func (a *agent) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *agent) output() string {
	return "--- stdout ---\n" + a.stdout.String() + "\n--- stderr ---\n" + a.stderr.String()
}

// waitExit waits for the process to end and returns its exit code.
func (a *agent) waitExit(timeout time.Duration) int {
	a.t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		a.t.Fatalf("linkops agent did not exit within %s\n%s", timeout, a.output())
	}
	var ee *exec.ExitError
	if a.waitErr != nil && !errors.As(a.waitErr, &ee) {
		a.t.Fatalf("wait for linkops agent: %v", a.waitErr)
	}
	return a.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and requires a clean exit (code 0).
func (a *agent) stop() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatalf("SIGTERM linkops agent: %v\n%s", err, a.output())
	}
	if code := a.waitExit(stopTimeout); code != 0 {
		a.t.Fatalf("linkops agent exited with code %d after SIGTERM, want 0\n%s", code, a.output())
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (a *agent) kill() {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		a.t.Fatalf("SIGKILL linkops agent: %v\n%s", err, a.output())
	}
	select {
	case <-a.done:
	case <-time.After(stopTimeout):
		a.t.Fatalf("linkops agent still running %s after SIGKILL", stopTimeout)
	}
}

// waitUntil polls cond until it returns nil, failing with its last error after timeout or
// at once if the agent exits.
func (a *agent) waitUntil(what string, cond func() error) {
	a.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if a.exited() {
			a.t.Fatalf("linkops agent exited (%v) while waiting for %s (last: %v)\n%s", a.waitErr, what, err, a.output())
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out after %s waiting for %s: %v\n%s", startTimeout, what, err, a.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy waits until GET /api/v1/health answers status "ok".
func (a *agent) waitHealthy() {
	a.t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	a.waitUntil("/api/v1/health to be ok", func() error {
		resp, err := hc.Get("http://" + a.httpAddr + "/api/v1/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var h struct {
			Status string `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			return fmt.Errorf("health: HTTP %d: %w", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusOK || h.Status != "ok" {
			return fmt.Errorf("health: HTTP %d, status %q", resp.StatusCode, h.Status)
		}
		return nil
	})
}

// login waits until user can log in (the first admin is created just after the node
// leads) and returns a client holding the token.
func (a *agent) login(user, password string) *client.Client {
	a.t.Helper()
	c := client.New(a.httpAddr, "")
	a.waitUntil("login as "+user, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := c.Login(ctx, user, password)
		return err
	})
	return c
}

// cliResult is the outcome of one run of the binary as a client.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs `linkops args...` with stdin, LINKOPS_TOKEN_FILE=tokenFile and no other
// LINKOPS_* variable.
func runCLI(t *testing.T, tokenFile, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = childEnv("LINKOPS_TOKEN_FILE=" + tokenFile)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run linkops %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("linkops %v did not finish within %s\nstdout:\n%s\nstderr:\n%s", args, cliTimeout, stdout.String(), stderr.String())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// mustCLI is runCLI that requires exit code 0.
func mustCLI(t *testing.T, tokenFile, stdin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, tokenFile, stdin, args...)
	if r.code != 0 {
		t.Fatalf("linkops %v: exit code %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// decodeJSON parses a command's -o json output.
func decodeJSON(t *testing.T, r cliResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, r.stdout)
	}
	return m
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// errNotYet is what a waitUntil condition returns while there is nothing to report.
var errNotYet = errors.New("not yet")
