package web_test

import (
	"testing"

	"github.com/linkops/linkops/internal/testutil"
)

// TestEveryPageLoads opens every page of the console on one node, in a real browser, and
// checks that each shows its title without a JavaScript error or a failed request. (The
// 3-node acceptance walk is e2e/TestConsole.)
func TestEveryPageLoads(t *testing.T) {
	n := testutil.StartNode(t, "")
	b := testutil.NewBrowser(t)
	base := "http://" + n.HTTPAddr()
	b.Login(t, base, testutil.AdminPassword)
	dir := t.ArtifactDir()
	for _, p := range testutil.ConsolePages {
		b.Open(t, p.Hash)
		b.Screenshot(dir, p.Menu)
		if problems := b.Problems(); len(problems) > 0 {
			t.Errorf("page %s: %v", p.Hash, problems)
		}
	}
}
