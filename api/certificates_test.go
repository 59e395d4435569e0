package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

type certBody struct {
	ID                string   `json:"id,omitempty"`
	Name              string   `json:"name,omitempty"`
	Cert              string   `json:"cert,omitempty"`
	Key               string   `json:"key,omitempty"`
	Trust             string   `json:"trust,omitempty"`
	Description       string   `json:"description,omitempty"`
	Subject           string   `json:"subject,omitempty"`
	Issuer            string   `json:"issuer,omitempty"`
	DNSNames          []string `json:"dnsNames,omitempty"`
	NotBefore         string   `json:"notBefore,omitempty"`
	NotAfter          string   `json:"notAfter,omitempty"`
	FingerprintSHA256 string   `json:"fingerprintSha256,omitempty"`
	Index             uint64   `json:"index,omitempty"`
	CreatedAt         string   `json:"createdAt,omitempty"`
	UpdatedAt         string   `json:"updatedAt,omitempty"`
}

func problemOf(t *testing.T, err error) *client.Problem {
	t.Helper()
	p, ok := err.(*client.Problem)
	if !ok {
		t.Fatalf("want a problem response, got %v", err)
	}
	return p
}

func fields(p *client.Problem) []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	sort.Strings(out)
	return out
}

func listIDs(t *testing.T, c *client.Client, path string) []string {
	t.Helper()
	var out struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		Total int `json:"total"`
	}
	if _, err := c.Do(context.Background(), http.MethodGet, path, nil, &out); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, it := range out.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

func TestCertificateDerivedFields(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	ca := testutil.NewCA(t)
	leaf := ca.Issue(t, "mqtt.example.com", "mqtt.example.com", "*.devices.example.com")
	var got certBody
	body := certBody{ID: "mqtt", Name: "MQTT 证书", Cert: leaf.CertPEM + ca.CertPEM, Key: leaf.KeyPEM, Trust: ca.CertPEM, Description: "chain with CA"}
	if _, err := admin.Do(context.Background(), http.MethodPost, "/api/v1/certificates", body, &got); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.Leaf.Raw)
	want := certBody{
		Subject:           leaf.Leaf.Subject.String(),
		Issuer:            ca.Leaf.Subject.String(),
		DNSNames:          []string{"mqtt.example.com", "*.devices.example.com"},
		NotBefore:         leaf.Leaf.NotBefore.UTC().Format("2006-01-02T15:04:05Z"),
		NotAfter:          leaf.Leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z"),
		FingerprintSHA256: hex.EncodeToString(sum[:]),
	}
	if got.Subject != want.Subject || got.Issuer != want.Issuer || strings.Join(got.DNSNames, ",") != strings.Join(want.DNSNames, ",") ||
		got.NotBefore != want.NotBefore || got.NotAfter != want.NotAfter || got.FingerprintSHA256 != want.FingerprintSHA256 {
		t.Fatalf("derived fields:\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(got.Subject, "CN=mqtt.example.com") || got.Index == 0 || got.CreatedAt == "" || got.Name != "MQTT 证书" {
		t.Fatalf("stored record incomplete: %+v", got)
	}
	if got.Key != "" {
		t.Fatal("create answered with the private key")
	}
}

func TestCertificateValidation(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	ca := testutil.NewCA(t)
	a, b := ca.Issue(t, "a", "a.example"), ca.Issue(t, "b", "b.example")
	long := func(n int) string { return strings.Repeat("名", n) }
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		body   certBody
		fields []string
	}{
		{"name of 65 characters", certBody{Name: long(65), Cert: a.CertPEM, Key: a.KeyPEM}, []string{"name"}},
		{"description of 201", certBody{Name: "x", Description: long(201), Cert: a.CertPEM, Key: a.KeyPEM}, []string{"description"}},
		{"unparsable cert", certBody{Name: "x", Cert: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", Key: a.KeyPEM}, []string{"cert"}},
		{"not PEM at all", certBody{Name: "x", Cert: "hello", Key: "world"}, []string{"cert", "key"}},
		{"key of another cert", certBody{Name: "x", Cert: a.CertPEM, Key: b.KeyPEM}, []string{"key"}},
		{"missing everything", certBody{}, []string{"cert", "key", "name"}},
		{"missing key", certBody{Name: "x", Cert: a.CertPEM}, []string{"key"}},
		{"bad trust bundle", certBody{Name: "x", Cert: a.CertPEM, Key: a.KeyPEM, Trust: "junk"}, []string{"trust"}},
		{"bad id", certBody{ID: "has space", Name: "x", Cert: a.CertPEM, Key: a.KeyPEM}, []string{"id"}},
		{"all at once", certBody{ID: "../x", Name: long(65), Description: long(201), Cert: "x", Key: "y"}, []string{"cert", "description", "id", "key", "name"}},
	} {
		_, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", tc.body, nil)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		p := problemOf(t, err)
		if p.Status != 400 || p.Code != "validation_failed" || strings.Join(fields(p), ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%s: got %d %s fields %v, want 400 validation_failed fields %v", tc.name, p.Status, p.Code, fields(p), tc.fields)
		}
		for _, e := range p.Errors {
			if e.Message == "" {
				t.Errorf("%s: field %s has no message", tc.name, e.Field)
			}
		}
	}
	if ids := listIDs(t, admin, "/api/v1/certificates"); len(ids) != 0 {
		t.Fatalf("refused requests stored certificates: %v", ids)
	}
	// The limits are inclusive: 64 and 200 characters are fine.
	if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", certBody{Name: long(64), Description: long(200), Cert: a.CertPEM, Key: a.KeyPEM}, nil); err != nil {
		t.Fatalf("64/200 characters refused: %v", err)
	}
}

func TestCertificateCRUDAndIfMatch(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	ctx := context.Background()
	ca := testutil.NewCA(t)
	a, b := ca.Issue(t, "a", "a.example"), ca.Issue(t, "b", "b.example")

	var created certBody
	if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", certBody{ID: "c1", Name: "one", Cert: a.CertPEM, Key: a.KeyPEM}, &created); err != nil {
		t.Fatal(err)
	}
	_, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", certBody{ID: "c1", Name: "dup", Cert: a.CertPEM, Key: a.KeyPEM}, nil)
	if p := problemOf(t, err); p.Status != 409 || p.Code != "already_exists" {
		t.Fatalf("duplicate id: %v", err)
	}
	var got certBody
	h, err := admin.Do(ctx, http.MethodGet, "/api/v1/certificates/c1", nil, &got)
	if err != nil {
		t.Fatal(err)
	}
	etag := h.Get("ETag")
	if etag == "" || etag != `"`+jsonNum(created.Index)+`"` {
		t.Fatalf("ETag %q, index %d", etag, created.Index)
	}

	// A PUT that omits the key keeps the stored one (it still matches the certificate).
	var updated certBody
	if _, err := admin.Do(ctx, http.MethodPut, "/api/v1/certificates/c1", certBody{Name: "renamed", Cert: a.CertPEM}, &updated); err != nil {
		t.Fatalf("update without key: %v", err)
	}
	if updated.Name != "renamed" || updated.Index <= created.Index || updated.CreatedAt != created.CreatedAt {
		t.Fatalf("update: %+v", updated)
	}
	// A stale If-Match is 412 and changes nothing.
	resp, err := admin.Raw(ctx, http.MethodPut, "/api/v1/certificates/c1", jsonBody(t, certBody{Name: "stale", Cert: b.CertPEM, Key: b.KeyPEM}), "application/json", http.Header{"If-Match": {etag}})
	if err == nil {
		resp.Body.Close()
		t.Fatal("stale If-Match accepted")
	}
	if p := problemOf(t, err); p.Status != 412 || p.Code != "precondition_failed" {
		t.Fatalf("stale If-Match: %v", err)
	}
	_, err = admin.Do(ctx, http.MethodGet, "/api/v1/certificates/c1", nil, &got)
	if err != nil || got.Name != "renamed" || got.FingerprintSHA256 != updated.FingerprintSHA256 {
		t.Fatalf("after 412: %+v %v", got, err)
	}
	resp, err = admin.Raw(ctx, http.MethodDelete, "/api/v1/certificates/c1", nil, "", http.Header{"If-Match": {etag}})
	if err == nil {
		resp.Body.Close()
		t.Fatal("stale If-Match delete accepted")
	}
	if p := problemOf(t, err); p.Status != 412 {
		t.Fatalf("stale delete: %v", err)
	}
	// The current ETag works, for replace and delete.
	h, _ = admin.Do(ctx, http.MethodGet, "/api/v1/certificates/c1", nil, &got)
	resp, err = admin.Raw(ctx, http.MethodPut, "/api/v1/certificates/c1", jsonBody(t, certBody{Name: "swapped", Cert: b.CertPEM, Key: b.KeyPEM}), "application/json", http.Header{"If-Match": {h.Get("ETag")}})
	if err != nil {
		t.Fatalf("current If-Match: %v", err)
	}
	resp.Body.Close()
	h, _ = admin.Do(ctx, http.MethodGet, "/api/v1/certificates/c1", nil, &got)
	if got.Subject != b.Leaf.Subject.String() {
		t.Fatalf("replace did not take: %+v", got)
	}
	resp, err = admin.Raw(ctx, http.MethodDelete, "/api/v1/certificates/c1", nil, "", http.Header{"If-Match": {h.Get("ETag")}})
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v", err)
	}
	resp.Body.Close()
	_, err = admin.Do(ctx, http.MethodGet, "/api/v1/certificates/c1", nil, &got)
	if p := problemOf(t, err); p.Status != 404 || p.Code != "not_found" {
		t.Fatalf("get deleted: %v", err)
	}
	_, err = admin.Do(ctx, http.MethodDelete, "/api/v1/certificates/c1", nil, nil)
	if p := problemOf(t, err); p.Status != 404 {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestCertificateListPagingSortFilter(t *testing.T) {
	t.Parallel()
	n := testutil.StartNode(t, "")
	admin := n.Admin(t)
	ctx := context.Background()
	ca := testutil.NewCA(t)
	a := ca.Issue(t, "a", "a.example")
	names := []string{"delta", "alpha", "charlie", "bravo", "echo-gateway"}
	for i, name := range names {
		if _, err := admin.Do(ctx, http.MethodPost, "/api/v1/certificates", certBody{ID: "id" + string(rune('0'+i)), Name: name, Cert: a.CertPEM, Key: a.KeyPEM}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := listIDs(t, admin, "/api/v1/certificates?sort=name"); strings.Join(got, ",") != "id1,id3,id2,id0,id4" {
		t.Errorf("sort=name: %v", got)
	}
	if got := listIDs(t, admin, "/api/v1/certificates?sort=-createdAt"); strings.Join(got, ",") != "id4,id3,id2,id1,id0" {
		t.Errorf("sort=-createdAt: %v", got)
	}
	if got := listIDs(t, admin, "/api/v1/certificates?sort=name&page=2&pageSize=2"); strings.Join(got, ",") != "id2,id0" {
		t.Errorf("page 2: %v", got)
	}
	if got := listIDs(t, admin, "/api/v1/certificates?q=GATE"); strings.Join(got, ",") != "id4" {
		t.Errorf("q=GATE: %v", got)
	}
	var env struct {
		Total, Page, PageSize int
	}
	if _, err := admin.Do(ctx, http.MethodGet, "/api/v1/certificates?page=3&pageSize=2", nil, &env); err != nil || env.Total != 5 || env.Page != 3 || env.PageSize != 2 {
		t.Errorf("envelope: %+v %v", env, err)
	}
	for _, q := range []string{"pageSize=501", "page=0", "sort=color", "pageSize=abc"} {
		_, err := admin.Do(ctx, http.MethodGet, "/api/v1/certificates?"+q, nil, nil)
		if p := problemOf(t, err); p.Status != 400 || len(p.Errors) != 1 {
			t.Errorf("%s: %v", q, err)
		}
	}
}

func jsonNum(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}
