package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
	"github.com/linkops/linkops/resource"
)

// TestSecretsNeverLeave sets a known value in every secret field of every resource, then
// reads everything back every way the API offers — create, get, list, update, enable,
// error responses — and searches all of it, and the node's log, for those values. It also
// proves that a PUT which omits a secret keeps it.
func TestSecretsNeverLeave(t *testing.T) {
	n := testutil.StartNode(t, "")
	c := n.Admin(t)
	ctx := context.Background()
	secrets := map[string]string{
		"mqtt client password":   "S3CRET-mqtt-client-password",
		"per-node mqtt password": "S3CRET-per-node-password",
		"sip password":           "S3CRET-sip-password",
		"ctwing appSecret":       "S3CRET-ctwing-app-secret",
		"onenet apiKey":          "S3CRET-onenet-api-key",
		"onenet notifyToken":     "S3CRET-onenet-notify-token",
		"onenet aesKey":          "S3CRET-onenetAES", // 16 characters: an OneNET Studio key
		"media secret":           "S3CRET-zlmedia-secret",
		"product secureKey":      "S3CRET-product-secure-key",
		"user password":          "S3CRET-user-password",
	}
	type res struct {
		path, id string
		body     obj
	}
	resources := []res{
		{"/api/v1/network-components", "mqttc", obj{"id": "mqttc", "name": "c", "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "10.0.0.1", "remotePort": 1883, "password": secrets["mqtt client password"]}}},
		{"/api/v1/network-components", "mqttc2", obj{"id": "mqttc2", "name": "c", "type": "MQTT_CLIENT", "shareCluster": false,
			"cluster": []obj{{"serverId": "node1", "configuration": obj{"remoteHost": "10.0.0.1", "remotePort": 1883, "password": secrets["per-node mqtt password"]}}}}},
		{"/api/v1/gateways", "gb", obj{"id": "gb", "name": "gb", "provider": "gb28181-2016", "configuration": obj{"sipId": "34020000001320000001", "port": 5060, "password": secrets["sip password"]}}},
		{"/api/v1/gateways", "ctw", obj{"id": "ctw", "name": "ctw", "provider": "Ctwing", "protocol": "official", "configuration": obj{"appKey": "k", "appSecret": secrets["ctwing appSecret"]}}},
		{"/api/v1/gateways", "one", obj{"id": "one", "name": "one", "provider": "OneNet", "protocol": "official", "configuration": obj{
			"apiKey": secrets["onenet apiKey"], "notifyToken": secrets["onenet notifyToken"], "aesKey": secrets["onenet aesKey"]}}},
		{"/api/v1/media-servers", "ms", obj{"id": "ms", "name": "ms", "provider": "zlmedia", "configuration": obj{"secret": secrets["media secret"], "apiHost": "10.0.0.2", "apiPort": 80, "rtpIp": "10.0.0.2", "rtpPort": 10000}}},
		{"/api/v1/products", "prod", obj{"id": "prod", "name": "prod", "secureId": "sid", "secureKey": secrets["product secureKey"]}},
		{"/api/v1/users", "bob", obj{"id": "bob", "username": "bob", "role": "viewer", "password": secrets["user password"]}},
	}
	var seen bytes.Buffer
	record := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		resp, err := c.Raw(ctx, method, path, rd, "application/json", nil)
		if p, ok := err.(*client.Problem); ok {
			b, _ := json.Marshal(p)
			seen.Write(b)
			if p.Status != want {
				t.Fatalf("%s %s → %d %s, want %d", method, path, p.Status, b, want)
			}
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		seen.Write(b)
		if resp.StatusCode != want {
			t.Fatalf("%s %s → %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	for _, r := range resources {
		record(http.MethodPost, r.path, r.body, http.StatusCreated)
		one := r.path + "/" + r.id
		got := record(http.MethodGet, one, nil, http.StatusOK)
		record(http.MethodGet, r.path, nil, http.StatusOK)
		record(http.MethodGet, r.path+"?q="+r.id, nil, http.StatusOK)

		// A PUT of what GET returned (no secrets in it) keeps every secret.
		record(http.MethodPut, one, got, http.StatusOK)
		// An invalid PUT that carries the secrets must not echo them in its error.
		bad := map[string]any{}
		for k, v := range r.body {
			bad[k] = v
		}
		bad["name"] = strings.Repeat("n", 65)
		bad["username"] = "bad name with spaces"
		record(http.MethodPut, one, bad, http.StatusBadRequest)
		// A create that fails inside the FSM (duplicate id) must not echo them either.
		record(http.MethodPost, r.path, r.body, http.StatusConflict)
	}
	for _, p := range []string{"/api/v1/network-components/mqttc", "/api/v1/gateways/gb", "/api/v1/media-servers/ms"} {
		record(http.MethodPost, p+"/enable", nil, http.StatusOK)
		record(http.MethodPost, p+"/disable", nil, http.StatusOK)
	}
	record(http.MethodGet, "/api/v1/openapi.json", nil, http.StatusOK)

	for what, v := range secrets {
		if strings.Contains(seen.String(), v) {
			t.Errorf("a response carries the %s", what)
		}
		if strings.Contains(n.Log.String(), v) {
			t.Errorf("the node's log carries the %s", what)
		}
	}

	// The secrets were kept through the PUTs: the stored objects still hold them.
	for _, r := range resources {
		kind, _ := resource.KindByName(strings.TrimPrefix(r.path, "/api/v1/"))
		stored, err := n.Store().Get(kind, r.id)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(stored)
		sent, _ := json.Marshal(r.body)
		for what, v := range secrets {
			if what != "user password" && strings.Contains(string(sent), v) && !strings.Contains(string(raw), v) {
				t.Errorf("%s %s lost its %s after a PUT without it", r.path, r.id, what)
			}
		}
	}
	// The user's password still works after the PUT without it.
	if _, _, err := n.Client("").Login(ctx, "bob", secrets["user password"]); err != nil {
		t.Errorf("bob's password was lost by a PUT without it: %v", err)
	}
}
