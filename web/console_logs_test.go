package web_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/linkops/linkops/internal/testutil"
)

// TestConsoleLogsAndCluster drives 日志管理 (rows, the detail drawer, the system tab, follow
// mode) and 集群 (the node table, live charts) in a real browser on one node.
func TestConsoleLogsAndCluster(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	for i := 0; i < 3; i++ {
		testutil.Do(t, admin, "GET", fmt.Sprintf("/api/v1/certificates?q=logsprobe%d", i), nil, nil)
	}

	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	dir := t.ArtifactDir()

	// The access log shows the requests made above (a record reaches its store within a
	// flush interval, so search again until it is there).
	b.Open(t, "#/logs")
	waitSearching(t, b, "the probe requests in the access log",
		`[...document.querySelectorAll('.logs-table tbody tr[data-id] td.log-url')].some((td) => td.textContent.includes('logsprobe1'))`)
	b.Screenshot(dir, "logs-access")

	// 查看 opens a drawer with every field, parameters pretty-printed.
	b.Run("open a record", chromedp.Click(`.logs-table tbody tr[data-id] .view`, chromedp.ByQuery))
	b.WaitJS(t, 10*time.Second, "the detail drawer",
		`!!document.querySelector('.drawer .log-detail') && document.querySelectorAll('.drawer .log-detail dt').length >= 8 &&
		 !!document.querySelector('.drawer [data-field="url"]')`)
	b.Screenshot(dir, "logs-detail")
	b.Run("close the drawer", chromedp.Click(`.drawer-x`, chromedp.ByQuery))
	b.WaitJS(t, 5*time.Second, "the drawer closed", `!document.querySelector('.drawer')`)

	// A filter lands in the hash and narrows the rows; paging keeps the first page's "to".
	b.Run("filter by path", chromedp.SetValue(`.f-path`, "/api/v1/certificates", chromedp.ByQuery),
		chromedp.Click(`.search-go`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "filtered rows",
		`location.hash.includes('path=') && document.querySelectorAll('.logs-table tbody tr[data-id]').length > 0 &&
		 [...document.querySelectorAll('.logs-table tbody tr[data-id] td.log-url')].every((td) => td.textContent.startsWith('/api/v1/certificates'))`)
	b.Run("reset", chromedp.Click(`button.reset`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "filters reset", `!location.hash.includes('path=') && document.querySelector('.f-path')?.value === ''`)
	for i := 0; i < 25; i++ {
		testutil.Do(t, admin, "GET", "/api/v1/certificates", nil, nil)
	}
	waitSearching(t, b, "a second page", `!!document.querySelector('.logs-pager .next:not(.disabled)')`)
	b.Run("next page", chromedp.Click(`.logs-pager .next`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "page 2",
		`location.hash.includes('page=2') && location.hash.includes('snap=') && document.querySelectorAll('.logs-table tbody tr[data-id]').length > 0`)
	b.Run("previous page", chromedp.Click(`.logs-pager .prev`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "page 1", `!location.hash.includes('page=') && !!document.querySelector('.logs-table tbody tr[data-id]')`)

	// The English console says the same.
	b.Run("switch to English", chromedp.Click(`.topbar .lang-switch`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the English page",
		`document.querySelector('main .page-title')?.textContent === 'Logs' && document.querySelector('.tab[data-tab="system"]')?.textContent === 'System log' &&
		 !document.querySelector('main').innerText.includes('logs.')`)
	b.Run("switch back to Chinese", chromedp.Click(`.topbar .lang-switch`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the Chinese page", `document.querySelector('main .page-title')?.textContent === '日志管理'`)

	// The system tab: the node's own records, with their level.
	b.Run("switch to the system tab", chromedp.Click(`.tab[data-tab="system"]`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "system records",
		`location.hash.includes('tab=system') && document.querySelector('.tab.active')?.dataset.tab === 'system' &&
		 document.querySelectorAll('.logs-table[data-kind="system"] tbody tr[data-id] .badge.level').length > 0`)
	b.Screenshot(dir, "logs-system")
	b.Run("open a system record", chromedp.Click(`.logs-table tbody tr[data-id] .view`, chromedp.ByQuery))
	b.WaitJS(t, 10*time.Second, "the system detail drawer", `!!document.querySelector('.drawer .log-detail [data-field="message"]')`)
	b.Run("close the drawer", chromedp.Click(`.drawer-x`, chromedp.ByQuery))

	// Follow mode shows a request made after it was turned on.
	b.Run("back to the access tab", chromedp.Click(`.tab[data-tab="access"]`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "the access tab", `document.querySelector('.tab.active')?.dataset.tab === 'access' && !!document.querySelector('.logs-table[data-kind="access"]')`)
	b.Run("follow", chromedp.Click(`button.follow`, chromedp.ByQuery))
	b.WaitJS(t, 15*time.Second, "follow mode on", `location.hash.includes('follow=1') && !!document.querySelector('button.follow.active') && !!document.querySelector('.logs-table')`)
	testutil.Do(t, admin, "GET", "/api/v1/certificates?q=followprobe", nil, nil)
	b.WaitJS(t, 30*time.Second, "the new request shown by follow mode",
		`[...document.querySelectorAll('.logs-table tbody tr[data-id] td.log-url')].some((td) => td.textContent.includes('followprobe'))`)
	b.Screenshot(dir, "logs-follow")

	// The cluster page: the node's row and a chart that has drawn a line.
	b.Open(t, "#/cluster")
	b.WaitJS(t, 15*time.Second, "the node row",
		fmt.Sprintf(`!!document.querySelector('.cluster-nodes tr[data-id=%q] .badge-alive')`, n.ID()))
	b.WaitJS(t, 30*time.Second, "a chart with a line",
		fmt.Sprintf(`!!document.querySelector('.node-card[data-node=%q] .chart[data-chart="connections"] svg polyline') &&
		 !!document.querySelector('.node-card[data-node=%q] .chart[data-chart="latency"] svg polyline')`, n.ID(), n.ID()))
	b.Screenshot(dir, "cluster")

	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("problems in the browser: %v", problems)
	}
}

// waitSearching waits for expr on the logs page, pressing 搜索 again every two seconds.
func waitSearching(t *testing.T, b *testutil.Browser, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		if err := b.Try(5*time.Second, chromedp.Evaluate(expr, &ok)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("browser: waited for %s (%s); problems seen: %v", what, expr, b.Problems())
		}
		time.Sleep(2 * time.Second)
		_ = b.Try(5*time.Second, chromedp.Evaluate(`document.querySelector('.search-go')?.click()`, nil))
		time.Sleep(300 * time.Millisecond)
	}
}
