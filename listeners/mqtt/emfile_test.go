package mqtt_test

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// Running out of file descriptors stops accepting only while it lasts: mochi's own
// accept loop would return on the first EMFILE and never accept again. Not parallel: it
// lowers the process's descriptor limit.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	run := serve(t, plainSpec(), &tracker{})
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()

	// Dial until this process has no descriptor left: the server's accepts fail first
	// or meanwhile, and the last connections wait in the kernel's backlog.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < 64 {
		c, err := net.Dial("tcp", run.Addr)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	run.WaitErrors(t, "accept", 1)
	restore()

	c := dialRaw(t, run.Addr)
	if code := c.connect(t, 4, "after-emfile", "u", "p"); code != 0 {
		t.Fatalf("CONNACK %#x once descriptors are back", code)
	}
}
