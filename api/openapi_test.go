package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/linkops/linkops/internal/testutil"
)

// TestOpenAPIMatchesRouter keeps the served document in step with the router: every routed
// method and path is documented, and nothing documented is unrouted.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	resp, err := n.Admin(t).Raw(context.Background(), http.MethodGet, "/api/v1/openapi.json", nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("document is not valid OpenAPI: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range n.API().Echo().Routes() {
		key := r.Method + " " + paramRe.ReplaceAllStringFunc(r.Path, func(p string) string { return "{" + p[1:] + "}" })
		routed[key] = true
		if !documented[key] {
			t.Errorf("routed but not documented: %s", key)
		}
	}
	for key := range documented {
		if !routed[key] {
			t.Errorf("documented but not routed: %s", key)
		}
	}
	// Secrets are documented as write-only; internal fields are not documented at all.
	cert := doc.Paths.Value("/api/v1/certificates").Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	if key := cert.Properties["key"]; key == nil || !key.Value.WriteOnly {
		t.Error("certificate key is not documented as writeOnly")
	}
	if strings.Contains(string(raw), "passwordHash") {
		t.Error("the document names the internal passwordHash field")
	}
}
