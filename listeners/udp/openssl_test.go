package udp_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
	"github.com/linkops/linkops/listeners/listenertest"
	"github.com/linkops/linkops/listeners/udp"
)

// opensslClient starts `openssl s_client -dtls1_2` against addr, verifying the server
// with ca and presenting client (if any); it returns its stdin and its stdout's lines.
func opensslClient(t *testing.T, addr string, ca *testutil.CA, client *testutil.Cert) (io.WriteCloser, <-chan string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is part of the test setup: %v", err)
	}
	dir := t.TempDir()
	write := func(name, pem string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(pem), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"s_client", "-dtls1_2", "-connect", addr, "-servername", "localhost",
		"-CAfile", write("ca.pem", ca.CertPEM), "-verify_return_error", "-quiet"}
	if client != nil {
		args = append(args, "-cert", write("dev.pem", client.CertPEM), "-key", write("dev.key", client.KeyPEM))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return stdin, lines, cmd
}

// A real DTLS 1.2 client (OpenSSL) with a client certificate exchanges records both
// ways; without one it is refused.
func TestDTLSOpenSSL(t *testing.T) {
	ca := testutil.NewCA(t)
	src, _ := source(t, ca, "server", ca.CertPEM)
	rec := listenertest.NewRecorder()
	run := listenertest.Serve(t, udp.Listener{}, dtlsSpec(src), rec)

	device := ca.IssueClient(t, "device-1")
	stdin, lines, _ := opensslClient(t, run.Addr, ca, &device)
	if _, err := io.WriteString(stdin, "hello from openssl\n"); err != nil {
		t.Fatal(err)
	}
	if f := rec.WaitFrames(t, 1); string(f[0].Payload) != "hello from openssl\n" {
		t.Errorf("frame %q", f[0].Payload)
	}
	if !rec.Opened()[0].TLS {
		t.Error("conn info does not say TLS")
	}
	if err := rec.Conns()[0].Send(listeners.Frame{Payload: []byte("downlink\n")}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if l != "downlink" {
			t.Errorf("openssl printed %q, want downlink", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("openssl did not receive the downlink")
	}

	_, out, refused := opensslClient(t, run.Addr, ca, nil)
	for range out { // until openssl exits
	}
	if err := refused.Wait(); err == nil {
		t.Error("openssl without a client certificate exited 0")
	}
	run.WaitErrors(t, "tls_handshake", 1)
	if n := len(rec.Opened()); n != 1 {
		t.Errorf("%d conns opened, want only the one with a certificate", n)
	}
}
