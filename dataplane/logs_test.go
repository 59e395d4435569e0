package dataplane_test

import (
	"strings"
	"testing"
)

// dumpLogs prints the tail of every node's log when the test failed.
func dumpLogs(t *testing.T, c *cluster) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				l := n.Log.String()
				lines := strings.Split(l, "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("=== %s\n%s", n.ID(), strings.Join(lines, "\n"))
			}
		}
	})
}
