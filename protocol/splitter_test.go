package protocol

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineSplit splits at '\n' (the message includes it), calls 0xff garbage, and misbehaves
// on purpose when the first byte asks it to.
const lineSplit = `
function split(bytes) {
  switch (bytes[0]) {
  case 0xf0: for (;;) {}
  case 0xf1: return split(bytes);
  case 0xf2: throw new RangeError("bad header " + bytes.length);
  case 0xf3: return "7";
  case 0xf4: return 1.5;
  case 0xf5: return bytes.length + 1;
  case 0xf6: return -2;
  case 0xf7: return {valueOf: function () { for (;;) {} }};
  case 0xf8: return NaN;
  case 0xff: return -1;
  }
  for (var i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) return i + 1;
  }
  return 0;
}`

func compileSplitter(t testing.TB, src string) *Splitter {
	t.Helper()
	s, err := CompileSplitter(src)
	if err != nil {
		t.Fatalf("CompileSplitter: %v", err)
	}
	return s
}

func TestSplitterAnswers(t *testing.T) {
	s := compileSplitter(t, lineSplit)
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"abc\ndef\n", 4}, {"\n", 1}, {"abc", 0}, {"", 0}, {"\xffabc\n", -1},
	} {
		n, err := s.Split(context.Background(), []byte(tt.in))
		if err != nil || n != tt.want {
			t.Errorf("Split(%q) = %d, %v; want %d", tt.in, n, err, tt.want)
		}
	}
}

func TestSplitterRefusesBadScripts(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"syntax error", "function split(b) { return b.length", "script has a syntax error at line 1"},
		{"no split", "function splat(b) { return 0 }", "the script defines no split function"},
		{"split is a number", "var split = 3;", "the script's split is a number, not a function"},
		{"throws", "throw new Error('no')", "script threw while loading: Error: no"},
		{"loops", "for (;;) {}", "the script did not finish loading within 100ms (an endless loop?)"},
		{"split getter loops", "Object.defineProperty(globalThis, 'split', {get: function () { for (;;) {} }});", "within 100ms"},
		{"not UTF-8", "function split(b) { return 0 } // \xff", "not UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileSplitter(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CompileSplitter = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Every failure costs that call only: the next call on the same Splitter answers.
func TestSplitterFailedCallsLeaveItUsable(t *testing.T) {
	s := compileSplitter(t, lineSplit)
	for _, tt := range []struct {
		first    byte
		sentinel error
		contains string
	}{
		{0xf0, ErrTimeout, "split did not finish within 100ms (an endless loop?)"},
		{0xf1, ErrException, "split overflowed the call stack"},
		{0xf2, ErrException, "split threw RangeError: bad header 2 (at script:"},
		{0xf3, ErrGarbage, "split must return a number, not string"},
		{0xf4, ErrGarbage, "split returned 1.5 for 2 bytes"},
		{0xf5, ErrGarbage, "split returned 3 for 2 bytes"},
		{0xf6, ErrGarbage, "split returned -2 for 2 bytes"},
		{0xf7, ErrGarbage, "not object"}, // its valueOf is never called
		{0xf8, ErrGarbage, "split returned NaN"},
	} {
		start := time.Now()
		_, err := s.Split(context.Background(), []byte{tt.first, '\n'})
		if !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.contains) {
			t.Fatalf("Split(%#x) = %v, want %v containing %q", tt.first, err, tt.sentinel, tt.contains)
		}
		if d := time.Since(start); d > hang {
			t.Fatalf("Split(%#x) took %v", tt.first, d) // bounds a hang, not a speed
		}
		if n, err := s.Split(context.Background(), []byte("ok\n")); n != 3 || err != nil {
			t.Fatalf("Split after %#x = %d, %v", tt.first, n, err)
		}
	}
}

func TestSplitterHonoursItsContext(t *testing.T) {
	s := compileSplitter(t, lineSplit)
	// The context ends long before CallTimeout; only a machine so busy that both fired
	// before the call was looked at may answer ErrTimeout instead, so that is tried again.
	for trial := 0; ; trial++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := s.Split(ctx, []byte{0xf0})
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
			break
		}
		if !errors.Is(err, ErrTimeout) || trial == 9 {
			t.Fatalf("Split = %v, want the context's deadline", err)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Split(cancelled, []byte("a\n")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Split with a cancelled context = %v", err)
	}
}

func TestSplitterInputLimit(t *testing.T) {
	// indexOf rather than a loop: a JavaScript loop over 64 KiB may outlast CallTimeout
	// under the race detector.
	s := compileSplitter(t, `function split(bytes) { return bytes.indexOf(10) + 1; }`)
	buf := make([]byte, MaxSplitBytes)
	buf[len(buf)-1] = '\n'
	if n, err := s.Split(context.Background(), buf); n != len(buf) || err != nil {
		t.Fatalf("Split of MaxSplitBytes = %d, %v", n, err)
	}
	if _, err := s.Split(context.Background(), append(buf, 'x')); !errors.Is(err, ErrInput) {
		t.Fatalf("Split of MaxSplitBytes+1 = %v, want ErrInput", err)
	}
}

// Connections split concurrently: every call gets its own answer, and the runtimes kept
// stay within bounds.
func TestSplitterConcurrentCalls(t *testing.T) {
	s := compileSplitter(t, lineSplit)
	var wg sync.WaitGroup
	errs := make(chan error, 3*maxEngines)
	for g := range 3 * maxEngines {
		wg.Go(func() {
			for i := range 20 {
				msg := strings.Repeat("x", g+i) + "\n"
				if n, err := s.Split(context.Background(), []byte(msg+"tail")); n != len(msg) || err != nil {
					errs <- fmt.Errorf("Split(%d bytes) = %d, %v", len(msg)+4, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(s.idle); n > maxEngines {
		t.Fatalf("%d idle runtimes, at most %d allowed", n, maxEngines)
	}
}

// A call that loops holds up only its caller: another call is answered while it still
// runs. (Were the runtime shared, the second call could only start once the first was
// interrupted; a trial where the machine was too slow to overlap the two is repeated.)
func TestSplitterLoopHoldsUpOnlyItsCaller(t *testing.T) {
	s := compileSplitter(t, lineSplit)
	for trial := 0; trial < 10; trial++ {
		looped := make(chan error, 1)
		go func() {
			_, err := s.Split(context.Background(), []byte{0xf0})
			looped <- err
		}()
		for len(s.slots) == 0 {
			time.Sleep(time.Millisecond)
		}
		n, err := s.Split(context.Background(), []byte("a\n"))
		select {
		case <-looped:
			// The loop ended first: no overlap to judge.
		default:
			if n != 2 || err != nil {
				t.Fatalf("Split beside a loop = %d, %v", n, err)
			}
			if err := <-looped; !errors.Is(err, ErrTimeout) {
				t.Fatalf("looping Split = %v, want ErrTimeout", err)
			}
			return
		}
	}
	t.Fatal("no call was answered while another looped, in 10 trials")
}

// FuzzSplitterResults has split return whatever JSON its bytes spell: Split never
// panics, and answers either an error naming the bad result or a length within bounds.
func FuzzSplitterResults(f *testing.F) {
	for _, s := range []string{`3`, `0`, `-1`, `-2`, `1e9`, `2.5`, `"3"`, `null`, `[]`, `{}`, `true`, `1e400`, `-0`, `{`} {
		f.Add([]byte(s))
	}
	s := compileSplitter(f, `function split(bytes) { return JSON.parse(String.fromCharCode.apply(null, bytes)); }`)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > MaxSplitBytes {
			return
		}
		n, err := s.Split(context.Background(), in)
		switch {
		case err != nil:
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrException) && !errors.Is(err, ErrTimeout) {
				t.Fatalf("Split = %v, want a sandbox error", err)
			}
		case n < -1 || n > len(in):
			t.Fatalf("Split = %d for %d bytes", n, len(in))
		}
	})
}
