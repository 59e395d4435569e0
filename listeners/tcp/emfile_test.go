//go:build unix

package tcp_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/linkops/linkops/resource"
)

// Running out of file descriptors costs the connections that arrive meanwhile a wait,
// never the listener: it retries accepting, and serves them once descriptors are free.
// It changes the process's open-file limit, so no test of this package runs in parallel.
func TestAcceptSurvivesRunningOutOfDescriptors(t *testing.T) {
	r, rec := serve(t, tcpSpec(parser(resource.ParserDelimited, resource.ParserConfig{Delimited: `\n`})))

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	release := func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restoring the open-file limit: %v", err)
		}
	}
	defer release()
	// A low soft limit, so that exhausting it takes a few hundred files, not a million.
	low := orig
	low.Cur = min(orig.Cur, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// One descriptor for the client's socket; the server has none left to accept it with.
	files[len(files)-1].Close()
	files = files[:len(files)-1]
	waiting := dial(t, r.Addr)
	write(t, waiting, "queued\n")
	r.WaitErrors(t, "accept", 2) // failed, and failed again on retrying
	if n := len(rec.Opened()); n != 0 {
		t.Fatalf("%d connections served while no descriptor was free", n)
	}

	release()
	if got := rec.WaitFrames(t, 1); string(got[0].Payload) != "queued" {
		t.Fatalf("messages %q", payloads(got))
	}
	fresh := dial(t, r.Addr)
	write(t, fresh, "fresh\n")
	if got := payloads(rec.WaitFrames(t, 2)); got[1] != "fresh" {
		t.Fatalf("messages %q", got)
	}
}
