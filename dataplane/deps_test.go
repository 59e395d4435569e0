package dataplane_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackagesImportWhatTheirDocsAllow turns the "must not" sentences of the device-side
// doc.go files into a check on the import graph: raft must not be imported directly (the
// fsm, which they read, implements raft.FSM), the others not even through another package.
func TestPackagesImportWhatTheirDocsAllow(t *testing.T) {
	const mod = "github.com/linkops/linkops/"
	forbidden := map[string][]string{
		"protocol":          {"github.com/hashicorp/raft", "net/http", mod + "fsm", mod + "listeners", mod + "api"},
		"protocol/official": {"github.com/hashicorp/raft", "net/http", mod + "fsm", mod + "listeners", mod + "session", mod + "gateway"},
		"session":           {"github.com/hashicorp/raft", mod + "api", mod + "listeners", mod + "cluster", mod + "gateway"},
		"gateway":           {"github.com/hashicorp/raft", mod + "api", mod + "cluster"},
		"listeners":         {"github.com/hashicorp/raft", mod + "api", mod + "session", mod + "gateway", mod + "cluster"},
		"dataplane":         {"github.com/hashicorp/raft", mod + "api", mod + "cluster"},
		"cloud":             {"github.com/hashicorp/raft", mod + "api", mod + "cluster", mod + "listeners"},
		"sip":               {"github.com/hashicorp/raft", mod + "api", mod + "cluster", mod + "listeners", mod + "media"},
		"media":             {"github.com/hashicorp/raft", mod + "api", mod + "cluster", mod + "sip", mod + "session"},
		"video":             {"github.com/hashicorp/raft", mod + "api", mod + "cluster", mod + "listeners"},
		// The console learns everything through the API it calls from the browser.
		"web": {"github.com/hashicorp/raft", mod + "api", mod + "cluster", mod + "fsm", mod + "resource", mod + "node"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		direct, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, direct)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		imports := map[string]bool{}
		for _, d := range strings.Fields(string(direct)) {
			imports[d] = true
		}
		for _, b := range bad {
			if b == "github.com/hashicorp/raft" && imports[b] || b != "github.com/hashicorp/raft" && deps[b] {
				t.Errorf("%s imports %s, which its doc.go rules out", pkg, b)
			}
		}
	}
}
