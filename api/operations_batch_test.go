package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// TestDeviceBatchOf10000 creates 10,000 devices in one request, pages through them in a
// stable order, and shows that a batch with one bad entry stores nothing.
func TestDeviceBatchOf10000(t *testing.T) {
	n := testutil.StartNode(t, "")
	c := n.Admin(t)
	ctx := context.Background()
	testutil.MustDo(t, n, c.Token, http.MethodPost, "/api/v1/products", obj{"id": "meter", "name": "meter"}, nil)

	const total = 10000
	batch := make([]obj, total)
	for i := range batch {
		batch[i] = obj{"id": fmt.Sprintf("m-%05d", (i*7919)%total), "name": fmt.Sprintf("meter %d", i), "productId": "meter"}
	}
	var created struct {
		Total int `json:"total"`
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/v1/devices/batch", batch, &created); err != nil {
		t.Fatalf("batch of %d: %v", total, err)
	}
	if created.Total != total || len(created.Items) != total || created.Items[0].State != "notActive" {
		t.Fatalf("created %d (%d items, first %+v), want %d notActive", created.Total, len(created.Items), created.Items[0], total)
	}

	// Two passes over every page give the same ids in the same order, each exactly once.
	pass := func() []string {
		var ids []string
		for page := 1; ; page++ {
			var out struct {
				Total int `json:"total"`
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			if _, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/devices?productId=meter&page=%d&pageSize=500", page), nil, &out); err != nil {
				t.Fatal(err)
			}
			if out.Total != total {
				t.Fatalf("page %d: total %d, want %d", page, out.Total, total)
			}
			if len(out.Items) == 0 {
				return ids
			}
			for _, it := range out.Items {
				ids = append(ids, it.ID)
			}
		}
	}
	first, second := pass(), pass()
	if len(first) != total {
		t.Fatalf("paged through %d devices, want %d", len(first), total)
	}
	seen := map[string]bool{}
	for i, id := range first {
		if seen[id] {
			t.Fatalf("device %s listed twice", id)
		}
		seen[id] = true
		if i > 0 && first[i-1] >= id {
			t.Fatalf("list is not in id order at %d: %s then %s", i, first[i-1], id)
		}
		if second[i] != id {
			t.Fatalf("second pass differs at %d: %s vs %s", i, second[i], id)
		}
	}

	// All or none: one bad entry (or one existing id) and nothing of the batch is stored.
	for name, tc := range map[string]struct {
		bad    obj
		status int
		code   string
		field  string
	}{
		"unknown product":   {obj{"id": "x-bad", "name": "bad", "productId": "nope"}, http.StatusBadRequest, "validation_failed", "[2].productId"},
		"name too long":     {obj{"id": "x-bad", "name": string(make([]byte, 65)), "productId": "meter"}, http.StatusBadRequest, "validation_failed", "[2].name"},
		"id already taken":  {obj{"id": "m-00001", "name": "dup", "productId": "meter"}, http.StatusConflict, "already_exists", "[2].id"},
		"id twice in batch": {obj{"id": "x-1", "name": "dup", "productId": "meter"}, http.StatusBadRequest, "validation_failed", "[2].id"},
	} {
		t.Run(name, func(t *testing.T) {
			b := []obj{{"id": "x-1", "name": "a", "productId": "meter"}, {"id": "x-2", "name": "b", "productId": "meter"}, tc.bad}
			_, err := c.Do(ctx, http.MethodPost, "/api/v1/devices/batch", b, nil)
			p, ok := err.(*client.Problem)
			if !ok || p.Status != tc.status || p.Code != tc.code || !problemNames(p, tc.field) {
				t.Fatalf("got %v, want %d %s naming %s", err, tc.status, tc.code, tc.field)
			}
			var out struct{ Total int }
			testutil.MustDo(t, n, c.Token, http.MethodGet, "/api/v1/devices?pageSize=1", nil, &out)
			if out.Total != total {
				t.Fatalf("%d devices after a refused batch, want %d", out.Total, total)
			}
		})
	}
	tooMany := make([]obj, total+1)
	for i := range tooMany {
		tooMany[i] = obj{"name": "d", "productId": "meter"}
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/v1/devices/batch", tooMany, nil); err == nil || err.(*client.Problem).Status != http.StatusBadRequest {
		t.Fatalf("a batch of %d: %v, want 400", total+1, err)
	}
}

func problemNames(p *client.Problem, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}
