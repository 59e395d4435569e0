package cluster

import (
	"net/http/httptest"
	"testing"

	"github.com/linkops/linkops/auth"
)

// A signature covers the query: a captured one cannot be replayed for other parameters.
func TestSignatureCoversTheQuery(t *testing.T) {
	c := &Cluster{cfg: Config{ClusterKey: auth.NewKey()}}
	signed := httptest.NewRequest("GET", "/internal/v1/logs/access?node=node1&user=alice", nil)
	c.SignRequest(signed)
	if err := c.VerifyRequest(signed); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	for _, target := range []string{
		"/internal/v1/logs/access?node=node1&user=bob",
		"/internal/v1/logs/access",
		"/internal/v1/logs/system?node=node1&user=alice",
	} {
		replay := httptest.NewRequest("GET", target, nil)
		replay.Header = signed.Header.Clone()
		if err := c.VerifyRequest(replay); err == nil {
			t.Errorf("the signature for %s was accepted for %s", signed.URL, target)
		}
	}
}
