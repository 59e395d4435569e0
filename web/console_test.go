package web_test

import (
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
)

// TestEveryPageLoads opens every page of the console on one node, in a real browser, and
// checks that each shows its title without a JavaScript error or a failed request; in
// English no Chinese word is left on any page; a viewer sees every page without the
// buttons the API would refuse them. (The 3-node acceptance walk is e2e/TestConsole.)
func TestEveryPageLoads(t *testing.T) {
	n := testutil.StartNode(t, "")
	n.Viewer(t) // creates the viewer user
	b := testutil.NewBrowser(t)
	base := "http://" + n.HTTPAddr()
	b.Login(t, base, testutil.AdminPassword)
	dir := t.ArtifactDir()
	extra := []struct{ Menu, Hash string }{
		{"gateway-card-picker", "#/gateways/new"}, {"network-new", "#/network/new"},
		{"certificate-new", "#/certificates/new"}, {"media-new", "#/media/new"},
	}
	pages := append(append([]struct{ Menu, Hash string }{}, testutil.ConsolePages...), extra...)
	for _, p := range pages {
		b.Open(t, p.Hash)
		b.Screenshot(dir, p.Menu)
		if problems := b.Problems(); len(problems) > 0 {
			t.Errorf("page %s: %v", p.Hash, problems)
		}
	}

	chinese := regexp.MustCompile(`\p{Han}+`)
	b.Run("switch to English", chromedp.Click(".lang-switch", chromedp.ByQuery))
	for _, p := range pages {
		b.Open(t, p.Hash)
		var text string
		b.Eval(`document.querySelector('main').innerText + document.querySelector('.menu').innerText`, &text)
		if words := chinese.FindAllString(text, -1); len(words) > 0 {
			t.Errorf("page %s in English still shows %q", p.Hash, words)
		}
	}
	b.Run("back to Chinese", chromedp.Click(".lang-switch", chromedp.ByQuery))

	b.Run("log out", chromedp.Click(".logout", chromedp.ByQuery), chromedp.WaitVisible("#login-password", chromedp.ByQuery))
	b.LoginAs(t, base, "viewer", "viewer-password")
	for _, p := range testutil.ConsolePages {
		b.Open(t, p.Hash)
		var admin []string
		b.Eval(`[...document.querySelectorAll('main .add, main .edit, main .delete, main .toggle, main .save')].map(e => e.className + ' ' + e.textContent)`, &admin)
		if len(admin) > 0 {
			t.Errorf("a viewer sees on %s the admin buttons %v", p.Hash, admin)
		}
		if problems := b.Problems(); len(problems) > 0 {
			t.Errorf("page %s as a viewer: %v", p.Hash, problems)
		}
	}
}
