package web_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/listeners"
)

// TestConsoleNetworkDebug: a component's page shows its live status, and its debug panel
// follows the debug stream: ready with the streaming nodes, then a TCP client's connect,
// its bytes (in hex) and its disconnect, as they happen.
func TestConsoleNetworkDebug(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	port := testutil.FreePort(t, "tcp", "127.0.0.1")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{"id": "tcp-debug", "name": "tcp-debug",
		"type": "TCP_SERVER", "state": "enabled", "configuration": map[string]any{"host": "127.0.0.1", "port": port}}, nil)
	testutil.WaitComponentStates(t, admin, "tcp-debug", map[string]string{n.Cfg.NodeID: listeners.StateRunning})

	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	wait := func(what, expr string) { t.Helper(); b.WaitJS(t, 30*time.Second, what, expr) }
	b.Open(t, "#/network/tcp-debug")
	wait("running with its address", fmt.Sprintf(`(() => { const r = document.querySelector('.status-host tr[data-id=%s]');
		return !!r && r.querySelector('.badge').dataset.state === 'running' && r.textContent.includes('127.0.0.1:%d'); })()`, testutil.JSString(n.Cfg.NodeID), port))
	b.Click("start debugging", ".debug-toggle")
	wait("the stream is ready", fmt.Sprintf(`[...document.querySelectorAll('.debug-stream .stream-line[data-event=ready]')].some(l => l.textContent.includes(%s))`, testutil.JSString(n.Cfg.NodeID)))

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	wait("the connect shown", `!!document.querySelector('.debug-stream .stream-line[data-event=connect]')`)
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	wait("the bytes shown in hex", `[...document.querySelectorAll('.debug-stream .stream-line[data-event=message]')].some(l => l.textContent.includes('68656c6c6f'))`)
	conn.Close()
	wait("the disconnect shown", `!!document.querySelector('.debug-stream .stream-line[data-event=disconnect]')`)
	b.Screenshot(t.ArtifactDir(), "network-debug")

	b.Click("stop debugging", ".debug-toggle")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser saw %v", p)
	}
}

// TestConsoleSecretKeptOnlyWhereItCan: editing an MQTT_CLIENT component, its password
// field says an empty value keeps the stored one; switched from 共享配置 to 独立配置 it no
// longer says so (the server has no entry to keep it from), and the password is asked.
func TestConsoleSecretKeptOnlyWhereItCan(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	testutil.Do(t, admin, http.MethodPost, "/api/v1/network-components", map[string]any{"id": "broker", "name": "broker",
		"type": "MQTT_CLIENT", "configuration": map[string]any{"remoteHost": "127.0.0.1", "remotePort": 1883, "password": "s3cret"}}, nil)
	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	b.Open(t, "#/network/broker/edit")
	keepsHint := `[...document.querySelectorAll('.field[data-field="password"]')].filter(f => !f.closest('[hidden]')).map(f => f.textContent.includes('留空则保留已保存的值'))`
	var hints []bool
	b.Eval(keepsHint, &hints)
	if len(hints) != 1 || !hints[0] {
		t.Errorf("shared password field: keeps-hint %v, want [true]", hints)
	}
	b.Choose(`select[name="shareCluster"]`, "false")
	b.WaitJS(t, 30*time.Second, "a row per node", `document.querySelectorAll('.node-row').length === 1`)
	hints = nil
	b.Eval(keepsHint, &hints)
	if len(hints) != 1 || hints[0] {
		t.Errorf("per-node password field after switching: keeps-hint %v, want [false]", hints)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser saw %v", p)
	}
}

// TestConsoleNoNodeTicked: 独立配置 with no node row ticked shows the server's message on
// the rows themselves (the field "cluster"), not at the top of the form, and nothing is
// saved; ticking the row then saves.
func TestConsoleNoNodeTicked(t *testing.T) {
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	b := testutil.NewBrowser(t)
	b.Login(t, "http://"+n.HTTPAddr(), testutil.AdminPassword)
	b.Open(t, "#/network/new")
	wait := func(what, expr string) { t.Helper(); b.WaitJS(t, 30*time.Second, what, expr) }
	wait("the form", `!!document.querySelector('input[name="name"]')`)
	b.SetValue(`input[name="name"]`, "no-rows")
	b.Choose(`select[name="shareCluster"]`, "false")
	wait("a row per node", `document.querySelectorAll('.node-row').length === 1`)
	b.Click("untick the node", `.node-row input[type=checkbox]`)
	b.Click("save", `.form-foot .save`)
	wait("the message above the rows", `(() => { const e = document.querySelector('.cluster-error');
		return !!e && !e.hidden && e.textContent.includes('needs at least one'); })()`)
	var topShown bool
	b.Eval(`[...document.querySelectorAll('.form-error')].some(e => !e.hidden)`, &topShown)
	if topShown {
		t.Error("the message is also at the top of the form")
	}
	var list struct{ Items []map[string]any }
	testutil.Do(t, admin, http.MethodGet, "/api/v1/network-components", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("saved though refused: %v", list.Items)
	}
	b.Screenshot(t.ArtifactDir(), "network-no-node-ticked")
	b.Problems() // the refused save's 400, expected

	b.Click("tick the node", `.node-row input[type=checkbox]`)
	b.SetValue(`.node-row input[name="port"]`, fmt.Sprint(testutil.FreePort(t, "tcp", "127.0.0.1")))
	b.Click("save", `.form-foot .save`)
	wait("back on the list", `location.hash === '#/network'`)
	testutil.Do(t, admin, http.MethodGet, "/api/v1/network-components", nil, &list)
	if len(list.Items) != 1 {
		t.Fatalf("components after the second save: %v", list.Items)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser saw %v", p)
	}
}
