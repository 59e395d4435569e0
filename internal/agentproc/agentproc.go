// Package agentproc starts and stops real `linkops agent` processes for black-box tests
// and benchmarks: free loopback ports, captured output, SIGTERM and SIGKILL, and waiting
// for health. It holds no product logic.
package agentproc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/linkops/linkops/client"
)

// Build compiles ./cmd/linkops of the module at root into dir and returns the binary path.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "linkops")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/linkops")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/linkops: %v\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot is the directory of the current module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	p := strings.TrimSpace(string(out))
	if p == "" || p == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(p), nil
}

// FreeAddrs returns n distinct loopback addresses whose ports were free for both TCP and
// UDP a moment ago (gossip binds both on one port). Every port is held until all are found,
// so none is returned twice.
func FreeAddrs(n int) ([]string, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var out []string
	for attempt := 0; len(out) < n; attempt++ {
		if attempt > 20*n {
			return nil, fmt.Errorf("could not find %d free loopback ports", n)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, ln, pc)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// Buffer is a goroutine-safe output sink.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Node is one agent process and the addresses it was given.
type Node struct {
	ID, DataDir                string
	HTTPAddr, RaftAddr, Gossip string
	Flags                      []string // extra flags, reused on restart
	bin                        string
	cmd                        *exec.Cmd
	done                       chan struct{}
	exitErr                    error
	Stdout, Stderr             *Buffer
}

// NewNode reserves ports for a node; Start runs it.
func NewNode(bin, id, dataDir string, flags ...string) (*Node, error) {
	addrs, err := FreeAddrs(3)
	if err != nil {
		return nil, err
	}
	return &Node{ID: id, DataDir: dataDir, Flags: flags, bin: bin, HTTPAddr: addrs[0], RaftAddr: addrs[1], Gossip: addrs[2]}, nil
}

// Start runs (or re-runs) the agent with its addresses and flags.
func (n *Node) Start() error {
	args := append([]string{"agent", "--node-id", n.ID, "--data-dir", n.DataDir, "--http-addr", n.HTTPAddr,
		"--raft-addr", n.RaftAddr, "--gossip-addr", n.Gossip}, n.Flags...)
	cmd := exec.Command(n.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LINKOPS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	n.Stdout, n.Stderr = &Buffer{}, &Buffer{}
	cmd.Stdout, cmd.Stderr = n.Stdout, n.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		n.exitErr = cmd.Wait()
		close(done)
	}(cmd, n.done)
	return nil
}

// Running reports whether the process is alive.
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Pid is the running process's id (0 when stopped).
func (n *Node) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil || !n.Running() {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() {
	if n.Running() {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit.
func (n *Node) Stop(timeout time.Duration) error {
	if !n.Running() {
		return nil
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.exitErr
	case <-time.After(timeout):
		n.Kill()
		return fmt.Errorf("%s did not stop within %s", n.ID, timeout)
	}
}

// Health is GET /api/v1/health.
type Health struct {
	Status, NodeID, Leader, RaftState string
}

// Health asks the node for its health.
func (n *Node) Health(ctx context.Context) (Health, error) {
	var h Health
	_, err := client.New(n.HTTPAddr, "").Do(ctx, http.MethodGet, "/api/v1/health", nil, &h)
	return h, err
}

// WaitLeader waits until the node knows a leader and returns its id.
func (n *Node) WaitLeader(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !n.Running() {
			return "", fmt.Errorf("%s exited: %v\n%s", n.ID, n.exitErr, n.Stderr.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		h, err := n.Health(ctx)
		cancel()
		if err == nil && h.Leader != "" {
			return h.Leader, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("%s knows no leader after %s", n.ID, timeout)
}

// Cluster starts n nodes that join each other with --bootstrap-expect n.
func Cluster(bin, baseDir string, count int, flags ...string) ([]*Node, error) {
	nodes := make([]*Node, count)
	var join []string
	for i := range nodes {
		n, err := NewNode(bin, fmt.Sprintf("node%d", i+1), filepath.Join(baseDir, fmt.Sprintf("node%d", i+1)))
		if err != nil {
			return nil, err
		}
		nodes[i] = n
		join = append(join, n.Gossip)
	}
	for i, n := range nodes {
		n.Flags = append([]string{"--bootstrap-expect", fmt.Sprint(count), "--join", strings.Join(join, ","),
			"--rack", fmt.Sprintf("rack-%d", i+1)}, flags...)
		if err := n.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range nodes {
		if _, err := n.WaitLeader(60 * time.Second); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}
