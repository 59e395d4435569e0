package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium (Debian's chromium, installed by scripts/test-deps.sh)
// driven through chromedp, at the 1280×800 the console is reviewed at. It records what a
// user's browser console would show: JavaScript exceptions, console.error calls, and
// requests that failed or were answered 4xx/5xx.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []problem
	// retried counts 503 answers the page recovered from (a later 2xx for the same URL):
	// an election's no_leader, which the console sends again.
	retried int
}

type problem struct {
	msg string
	url string // set for a 503 answer, which a later success of the same URL forgives
}

// ChromiumPath finds the browser: $LINKOPS_CHROMIUM, else chromium on PATH.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LINKOPS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/test-deps.sh (make test does)")
	return ""
}

// NewBrowser starts a fresh browser profile; it is closed when the test ends.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes may still write to the profile while the
	// test's cleanup removes it, which fails the test; this one is removed best-effort.
	profile, err := os.MkdirTemp("", "linkops-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.WindowSize(1280, 800),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.UserDataDir(profile),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, b.observe)
	if err := chromedp.Run(ctx, network.Enable(), runtime.Enable(), chromedp.EmulateViewport(1280, 800)); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return b
}

func (b *Browser) observe(ev any) {
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		b.record("javascript exception: %s (%s:%d)", msg, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber)
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.APITypeError {
			var parts []string
			for _, a := range e.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
			}
			b.record("console.error: %s", strings.Join(parts, " "))
		}
	case *network.EventLoadingFailed:
		if e.Canceled {
			return // a stream the page closed on leaving, not a failure
		}
		b.record("request failed: %s (%s)", e.ErrorText, e.RequestID)
	case *network.EventResponseReceived:
		switch {
		case e.Response.Status == 503:
			b.mu.Lock()
			b.problems = append(b.problems, problem{msg: fmt.Sprintf("request answered 503: %s", e.Response.URL), url: e.Response.URL})
			b.mu.Unlock()
		case e.Response.Status >= 400:
			b.record("request answered %d: %s", e.Response.Status, e.Response.URL)
		case e.Response.Status < 300:
			b.forgive(e.Response.URL)
		}
	}
}

func (b *Browser) record(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, problem{msg: fmt.Sprintf(format, args...)})
}

// forgive drops the 503s of url that came before its success.
func (b *Browser) forgive(url string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.problems[:0]
	for _, p := range b.problems {
		if p.url == url {
			b.retried++
			continue
		}
		kept = append(kept, p)
	}
	b.problems = kept
}

// Problems answers what went wrong since the last call, and forgets it.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.problems {
		out = append(out, p.msg)
	}
	b.problems = nil
	return out
}

// Retried answers how many 503 answers the pages recovered from by sending again.
func (b *Browser) Retried() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.retried
}

// Run runs actions with a deadline, failing the test with what it was doing.
func (b *Browser) Run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	if err := b.Try(30*time.Second, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v\nproblems seen: %v", what, err, b.Problems())
	}
}

// Try runs actions within timeout and answers their error.
func (b *Browser) Try(timeout time.Duration, actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Text answers the text of the first element matching the CSS selector (waiting for it).
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.Run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// Eval evaluates a JavaScript expression into out.
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	b.Run("evaluate "+expr, chromedp.Evaluate(expr, out))
}

// WaitJS polls a JavaScript condition until it is true, failing after timeout with what.
func (b *Browser) WaitJS(t testing.TB, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := b.Try(5*time.Second, chromedp.Evaluate(expr, &ok))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var page string
			_ = b.Try(5*time.Second, chromedp.Evaluate(`location.hash + '\n' + document.body.innerText.slice(0, 1500)`, &page))
			t.Fatalf("browser: waited %s for %s (%s): last error %v; problems seen: %v\nthe page shows:\n%s", timeout, what, expr, err, b.Problems(), page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot writes the whole viewport as dir/<test>-name.png.
func (b *Browser) Screenshot(dir, name string) string {
	b.t.Helper()
	var png []byte
	b.Run("screenshot "+name, chromedp.CaptureScreenshot(&png))
	// Named after the test too: go test's artifact folders are numbered, not named.
	path := filepath.Join(dir, strings.NewReplacer("/", "-", " ", "_").Replace(b.t.Name())+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// ConsolePages are the console's pages reached from its menu, by menu key and hash.
var ConsolePages = []struct{ Menu, Hash string }{
	{"gateways", "#/gateways"}, {"protocols", "#/protocols"}, {"logs", "#/logs"},
	{"network", "#/network"}, {"certificates", "#/certificates"}, {"media", "#/media"},
	{"ota", "#/ota"}, {"products", "#/products"}, {"devices", "#/devices"}, {"cluster", "#/cluster"},
}

// Login opens the console at base (http://host:port) and logs in as admin with password,
// unless the browser kept a token for that origin.
func (b *Browser) Login(t testing.TB, base, password string) {
	t.Helper()
	b.LoginAs(t, base, "admin", password)
}

// LoginAs is Login as another user.
func (b *Browser) LoginAs(t testing.TB, base, user, password string) {
	t.Helper()
	b.Run("open the console at "+base, chromedp.Navigate(base+"/"))
	b.WaitJS(t, 30*time.Second, "the login page or the menu", `!!document.querySelector('#login-password, .menu')`)
	var loggedIn bool
	b.Run("logged in already?", chromedp.Evaluate(`!!document.querySelector('.menu')`, &loggedIn))
	if loggedIn { // this origin kept an earlier login's token
		return
	}
	b.Run("log in",
		chromedp.SetValue("#login-username", user, chromedp.ByQuery),
		chromedp.SendKeys("#login-password", password, chromedp.ByQuery),
		chromedp.Click(".login-submit", chromedp.ByQuery),
		chromedp.WaitVisible(".menu", chromedp.ByQuery))
}

// Open goes to a console page and waits until its title is shown and nothing is loading.
func (b *Browser) Open(t testing.TB, hash string) {
	t.Helper()
	b.Run("open "+hash, chromedp.Evaluate(fmt.Sprintf("location.hash = %q", hash), nil))
	b.WaitJS(t, 15*time.Second, "page "+hash+" shown",
		fmt.Sprintf(`(() => { const m = document.querySelector('main'); return !!m && m.dataset.hash === %q && !!m.querySelector('.page-title'); })()`, hash))
}

// Click waits for the element and clicks it, as a user does.
func (b *Browser) Click(what, sel string) {
	b.t.Helper()
	b.Run(what, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Click(sel, chromedp.ByQuery))
}

// SetValue waits for an input, textarea or select and sets its value.
func (b *Browser) SetValue(sel, value string) {
	b.t.Helper()
	b.Run("fill "+sel, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.SetValue(sel, value, chromedp.ByQuery))
}

// Choose sets a select (or any input) and fires its change event, as a user's pick does.
func (b *Browser) Choose(sel, value string) {
	b.t.Helper()
	b.SetValue(sel, value)
	b.Run("change "+sel, chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%s).dispatchEvent(new Event('change', {bubbles: true}))`, JSString(sel)), nil))
}

// Confirm answers OK in the console's confirmation dialog.
func (b *Browser) Confirm() {
	b.t.Helper()
	b.Click("confirm", ".confirm-ok")
}

// JSString quotes s as a JavaScript string literal.
func JSString(s string) string {
	return strconv.Quote(s)
}
