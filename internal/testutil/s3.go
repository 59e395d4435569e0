package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// versitygwPackage is the S3 server the tests run against (SPEC §7); scripts/test-deps.sh
// installs the same version into the same place.
const versitygwPackage = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3 is a real S3 server for a test: versitygw with its posix backend in a temp directory,
// on a loopback port, with random root credentials. Stop and Start take it away and bring
// it back on the same port with the same contents, for "the store comes back" tests.
type S3 struct {
	Endpoint  string // "127.0.0.1:PORT"
	AccessKey string
	SecretKey string

	t   testing.TB
	bin string
	dir string // the posix backend's root: one directory per bucket
	log string // the server's stdout and stderr, shown when the test fails

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartS3 starts an S3 server for t, installing versitygw first if it is missing, and
// waits until it answers. It stops when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s := &S3{
		Endpoint:  fmt.Sprintf("127.0.0.1:%d", FreePort(t, "tcp", "127.0.0.1")),
		AccessKey: randomHex(t, 10),
		SecretKey: randomHex(t, 20),
		t:         t,
		bin:       Versitygw(t),
		dir:       t.TempDir(),
		log:       filepath.Join(t.TempDir(), "versitygw.log"),
	}
	// Registered after the TempDirs, so it runs before they are removed.
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.log); err == nil {
				if len(b) > 4096 {
					b = b[len(b)-4096:]
				}
				t.Logf("versitygw log (tail):\n%s", b)
			}
		}
	})
	s.Start()
	return s
}

// URL is the --blob-store URL of bucket on this server.
func (s *S3) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&secure=false&region=us-east-1", bucket, s.Endpoint)
}

// Env is a getenv that gives this server's credentials and nothing else.
func (s *S3) Env() func(string) string {
	return func(k string) string {
		switch k {
		case "AWS_ACCESS_KEY_ID":
			return s.AccessKey
		case "AWS_SECRET_ACCESS_KEY":
			return s.SecretKey
		}
		return ""
	}
}

// Start starts the server (again) on its port and directory and waits until it answers.
// Call it from the test's goroutine.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("S3 on %s is already running", s.Endpoint)
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--port", s.Endpoint, "--quiet", "posix", s.dir)
	// Only what it needs: versitygw reads ROOT_* and VGW_* settings from the environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		s.t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	// Any HTTP answer (403 to an unsigned request) means it serves.
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second) // bounds a hang, never judges speed
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(s.log)
			s.cmd = nil
			s.t.Fatalf("versitygw on %s exited at start: %s\n%s", s.Endpoint, cmd.ProcessState, b)
		default:
		}
		if resp, err := hc.Get("http://" + s.Endpoint + "/"); err == nil {
			_ = resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw on %s did not answer within 30s", s.Endpoint)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits until it has exited; stopping a stopped server does
// nothing.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// versitygwMu keeps the test packages' goroutines from installing at once; a file lock
// does the same across the test binaries `go test ./...` runs in parallel.
var versitygwMu sync.Mutex

// Versitygw returns the path of the versitygw binary, in $LINKOPS_TOOLS_DIR or else
// ~/.cache/linkops/bin, installing it there with `go install` when it is missing (about
// 90 s the first time).
func Versitygw(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("LINKOPS_TOOLS_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("no LINKOPS_TOOLS_DIR and no home directory: %v", err)
		}
		dir = filepath.Join(home, ".cache", "linkops", "bin")
	}
	bin := filepath.Join(dir, "versitygw")

	versitygwMu.Lock()
	defer versitygwMu.Unlock()
	if isExecutable(bin) {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".versitygw.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	// Closing the file (deferred above) releases the lock.
	if isExecutable(bin) { // another test binary installed it while we waited
		return bin
	}

	// Into a directory of its own, then renamed: an interrupted install never leaves a
	// half-written binary where the next run would take it for a good one.
	gobin, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(gobin)
	t.Logf("installing %s into %s (about 90 s the first time)", versitygwPackage, dir)
	cmd := exec.Command(goTool(), "install", versitygwPackage)
	cmd.Dir = gobin // outside any module, so go.mod files around the test do not matter
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", versitygwPackage, err, out)
	}
	if err := os.Rename(filepath.Join(gobin, "versitygw"), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// goTool is the go command: from PATH, else the toolchain that built the test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
