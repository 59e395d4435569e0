package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// image is the tag `make image` builds.
const image = "linkops:dev"

var buildOnce sync.Once
var buildErr error

// buildImage builds the node image once per test binary with the project's own target.
func buildImage(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		out, err := exec.Command("make", "-C", root, "image").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make image: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// run executes a command and returns its trimmed stdout, failing the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func tryRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// dockerCluster is three linkops containers on a private bridge network.
type dockerCluster struct {
	t       *testing.T
	prefix  string
	network string
	names   []string
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const clusterKey = "bGlua29wcy1mYXVsdC1zdWl0ZS1jbHVzdGVyLWtleSE="

// AdminPassword of the containers' admin user.
const adminPassword = "fault-suite-password"

func startDockerCluster(t *testing.T, n int, extraFlags ...string) *dockerCluster {
	t.Helper()
	buildImage(t)
	prefix := "linkops-faults-" + randomSuffix()
	c := &dockerCluster{t: t, prefix: prefix, network: prefix}
	run(t, "docker", "network", "create", c.network)
	t.Cleanup(c.remove)
	var join []string
	for i := 1; i <= n; i++ {
		c.names = append(c.names, fmt.Sprintf("%s-n%d", prefix, i))
		join = append(join, fmt.Sprintf("%s-n%d:8846", prefix, i))
	}
	for i, name := range c.names {
		args := []string{"run", "-d", "--name", name, "--hostname", name, "--network", c.network,
			"-p", "127.0.0.1::8844", image,
			"--node-id", fmt.Sprintf("n%d", i+1), "--rack", fmt.Sprintf("rack-%d", i+1),
			"--bootstrap-expect", fmt.Sprint(n), "--join", strings.Join(join, ","),
			"--cluster-key", clusterKey, "--admin-password", adminPassword, "--log-level", "debug"}
		args = append(args, extraFlags...)
		run(t, "docker", args...)
	}
	return c
}

// remove deletes the containers and the network, and keeps their logs when the test failed.
func (c *dockerCluster) remove() {
	for _, name := range c.names {
		if c.t.Failed() {
			if logs, err := exec.Command("docker", "logs", "--tail", "80", name).CombinedOutput(); err == nil {
				c.t.Logf("--- last log lines of %s ---\n%s", name, logs)
			}
		}
		_, _ = tryRun("docker", "rm", "-f", "-v", name)
	}
	_, _ = tryRun("docker", "network", "rm", c.network)
}

// apiAddr is the host address of a container's published API port (it changes when the
// container restarts).
func (c *dockerCluster) apiAddr(i int) (string, error) {
	out, err := tryRun("docker", "port", c.names[i], "8844/tcp")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "127.0.0.1:") {
			return line, nil
		}
	}
	return "", fmt.Errorf("no 127.0.0.1 port for %s: %q", c.names[i], out)
}

func (c *dockerCluster) ip(i int) string {
	return run(c.t, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c.names[i])
}

func (c *dockerCluster) pid(i int) string {
	return run(c.t, "docker", "inspect", "-f", "{{.State.Pid}}", c.names[i])
}

func (c *dockerCluster) kill(i int)    { run(c.t, "docker", "kill", "-s", "KILL", c.names[i]) }
func (c *dockerCluster) start(i int)   { run(c.t, "docker", "start", c.names[i]) }
func (c *dockerCluster) pause(i int)   { run(c.t, "docker", "pause", c.names[i]) }
func (c *dockerCluster) unpause(i int) { run(c.t, "docker", "unpause", c.names[i]) }

// partition cuts node i off from every other node, both ways, inside its own network
// namespace; the host (and so the test client) can still reach it.
func (c *dockerCluster) partition(i int) {
	c.t.Helper()
	pid := c.pid(i)
	for j := range c.names {
		if j == i {
			continue
		}
		peer := c.ip(j)
		run(c.t, "nsenter", "-t", pid, "-n", "iptables", "-I", "INPUT", "-s", peer, "-j", "DROP")
		run(c.t, "nsenter", "-t", pid, "-n", "iptables", "-I", "OUTPUT", "-d", peer, "-j", "DROP")
	}
}

// heal removes node i's partition rules.
func (c *dockerCluster) heal(i int) {
	c.t.Helper()
	pid := c.pid(i)
	run(c.t, "nsenter", "-t", pid, "-n", "iptables", "-F", "INPUT")
	run(c.t, "nsenter", "-t", pid, "-n", "iptables", "-F", "OUTPUT")
}

func init() {
	// The suite drives docker and iptables: say so clearly if they are missing rather than
	// failing deep inside a test.
	for _, tool := range []string{"docker", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "faults: %s not found; `make test` installs it (scripts/test-deps.sh)\n", tool)
		}
	}
}
