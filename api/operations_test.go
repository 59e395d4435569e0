package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// ruleStep is one request of the rule table and what the API must answer.
type ruleStep struct {
	name   string
	method string
	path   string
	body   any
	// upload, when set, sends a multipart form with these fields and the file "file".
	upload map[string]string
	file   []byte
	status int
	// code and field are checked on error answers: the problem's code, and one of its
	// errors[].field.
	code  string
	field string
	// check inspects a successful answer.
	check func(t *testing.T, body map[string]any)
}

type obj = map[string]any

func long(n int) string { return strings.Repeat("x", n) }

// ruleTable is every rule of the manual and of SPEC §4.1–4.6, as a sequence of requests
// that build on each other. localDir is a local protocol directory that every node sees.
func ruleTable(t *testing.T, ca *testutil.CA, localDir string) []ruleStep {
	cert := ca.Issue(t, "device.example.com", "device.example.com")
	nameOf := func(id string) string {
		if id == "" {
			return "unnamed"
		}
		return id
	}
	tcp := func(id string, port int, extra obj) obj {
		cfg := obj{"port": port}
		for k, v := range extra {
			cfg[k] = v
		}
		return obj{"id": id, "name": nameOf(id), "type": "TCP_SERVER", "configuration": cfg}
	}
	withState := func(o obj, state string) obj { o["state"] = state; return o }
	perNode := func(id, typ string, entries ...obj) obj {
		return obj{"id": id, "name": id, "type": typ, "shareCluster": false, "cluster": entries}
	}
	entry := func(node string, cfg obj) obj { return obj{"serverId": node, "configuration": cfg} }
	gw := func(id, provider, channel, protocol string) obj {
		g := obj{"id": id, "name": nameOf(id), "provider": provider}
		if channel != "" {
			g["channelId"] = channel
		}
		if protocol != "" {
			g["protocol"] = protocol
		}
		return g
	}
	sip := func(id, sipID string, port int) obj {
		return obj{"id": id, "name": nameOf(id), "provider": "gb28181-2016", "configuration": obj{"sipId": sipID, "port": port, "password": "sip-pass"}}
	}
	media := func(id string, cfg obj) obj {
		c := obj{"secret": "zlm-secret", "apiHost": "127.0.0.1", "apiPort": 8080, "rtpIp": "10.0.0.5", "rtpPort": 10000}
		for k, v := range cfg {
			c[k] = v
		}
		return obj{"id": id, "name": nameOf(id), "provider": "zlmedia", "configuration": c}
	}
	const (
		nc  = "/api/v1/network-components"
		gws = "/api/v1/gateways"
		pr  = "/api/v1/protocols"
		ms  = "/api/v1/media-servers"
		pd  = "/api/v1/products"
		dv  = "/api/v1/devices"
	)
	post := func(name, path string, body any, status int, code, field string) ruleStep {
		return ruleStep{name: name, method: http.MethodPost, path: path, body: body, status: status, code: code, field: field}
	}
	put := func(name, path string, body any, status int, code, field string) ruleStep {
		return ruleStep{name: name, method: http.MethodPut, path: path, body: body, status: status, code: code, field: field}
	}
	del := func(name, path string, status int, code string) ruleStep {
		return ruleStep{name: name, method: http.MethodDelete, path: path, status: status, code: code}
	}
	const bad, conflict = http.StatusBadRequest, http.StatusConflict
	const vf = "validation_failed"

	steps := []ruleStep{
		post("certificate for the components", "/api/v1/certificates", obj{"id": "cert1", "name": "cert1", "cert": cert.CertPEM, "key": cert.KeyPEM}, 201, "", ""),
	}
	// Names over 64 and descriptions over 200, for every resource.
	for path, body := range map[string]obj{
		"/api/v1/certificates": {"cert": cert.CertPEM, "key": cert.KeyPEM},
		nc:                     tcp("", 9999, nil),
		gws:                    gw("", "mqtt-server-gateway", "nope", "official"),
		pr:                     {"type": "local", "configuration": obj{"location": localDir}},
		ms:                     media("", nil),
		pd:                     {},
		dv:                     {"productId": "prod1"},
	} {
		for _, tc := range []struct {
			field, value string
		}{{"name", long(65)}, {"name", ""}, {"description", long(201)}} {
			b := obj{"name": "ok"}
			for k, v := range body {
				b[k] = v
			}
			delete(b, "id")
			b[tc.field] = tc.value
			steps = append(steps, post(fmt.Sprintf("%s %s %d chars", path, tc.field, len(tc.value)), path, b, bad, vf, tc.field))
		}
		ok := obj{"name": long(64), "description": long(200)}
		_ = ok
	}
	steps = append(steps,
		// Network components: every field with its own message.
		post("TCP server", nc, tcp("tcp1", 9001, nil), 201, "", ""),
		post("64-character name and 200-character description are fine", nc, obj{"id": "limits", "name": strings.Repeat("名", 64), "description": strings.Repeat("述", 200), "type": "UDP", "configuration": obj{"port": 9002}}, 201, "", ""),
		post("duplicate id", nc, tcp("tcp1", 9003, nil), conflict, "already_exists", ""),
		post("port missing", nc, tcp("p0", 0, nil), bad, vf, "configuration.port"),
		post("port too big", nc, tcp("p1", 70000, nil), bad, vf, "configuration.port"),
		post("host not an IP", nc, tcp("p2", 9004, obj{"host": "not-an-ip"}), bad, vf, "configuration.host"),
		post("publicPort out of range", nc, tcp("p3", 9004, obj{"publicPort": -1}), bad, vf, "configuration.publicPort"),
		post("unknown type", nc, obj{"name": "x", "type": "FOO", "configuration": obj{"port": 1}}, bad, vf, "type"),
		post("TLS without certId", nc, tcp("s1", 9005, obj{"secure": true}), bad, vf, "configuration.certId"),
		post("DTLS without certId", nc, obj{"name": "c", "type": "COAP_SERVER", "configuration": obj{"port": 5683, "secure": true}}, bad, vf, "configuration.certId"),
		post("TLS with a certificate that does not exist", nc, tcp("s2", 9005, obj{"secure": true, "certId": "nope"}), bad, vf, "configuration.certId"),
		post("per-node certificate that does not exist", nc, perNode("s3", "TCP_SERVER", entry("node1", obj{"port": 9006, "secure": true, "certId": "nope"})), bad, vf, "cluster[0].configuration.certId"),
		post("per-node without entries", nc, perNode("s4", "TCP_SERVER"), bad, vf, "cluster"),
		post("per-node entry without serverId", nc, perNode("s5", "TCP_SERVER", entry("", obj{"port": 9007})), bad, vf, "cluster[0].serverId"),
		post("per-node node twice", nc, perNode("s6", "TCP_SERVER", entry("node1", obj{"port": 9007}), entry("node1", obj{"port": 9008})), bad, vf, "cluster[1].serverId"),
		post("shared without configuration", nc, obj{"name": "x", "type": "TCP_SERVER"}, bad, vf, "configuration"),
		post("DELIMITED without delimiter", nc, tcp("d1", 9010, obj{"parserType": "DELIMITED"}), bad, vf, "configuration.parserConfiguration.delimited"),
		post("DELIMITED with bad hex", nc, tcp("d2", 9010, obj{"parserType": "DELIMITED", "parserConfiguration": obj{"delimited": "0xZZ"}}), bad, vf, "configuration.parserConfiguration.delimited"),
		post("DELIMITED with escapes", nc, tcp("d3", 9010, obj{"parserType": "DELIMITED", "parserConfiguration": obj{"delimited": `\r\n`}}), 201, "", ""),
		post("FIXED_LENGTH size 0", nc, tcp("d4", 9011, obj{"parserType": "FIXED_LENGTH"}), bad, vf, "configuration.parserConfiguration.size"),
		post("LENGTH_FIELD length 5", nc, tcp("d5", 9011, obj{"parserType": "LENGTH_FIELD", "parserConfiguration": obj{"length": 5}}), bad, vf, "configuration.parserConfiguration.length"),
		post("SCRIPT that does not compile", nc, tcp("d6", 9011, obj{"parserType": "SCRIPT", "parserConfiguration": obj{"script": "function ( {"}}), bad, vf, "configuration.parserConfiguration.script"),
		post("SCRIPT without a split function", nc, tcp("d6b", 9012, obj{"parserType": "SCRIPT", "parserConfiguration": obj{"script": "var x = 1;"}}), bad, vf, "configuration.parserConfiguration.script"),
		post("unknown parser", nc, tcp("d7", 9011, obj{"parserType": "MAGIC"}), bad, vf, "configuration.parserType"),
		post("parser setting of another parser", nc, tcp("d8", 9011, obj{"parserType": "FIXED_LENGTH", "parserConfiguration": obj{"size": 4, "length": 2}}), bad, vf, "configuration.parserConfiguration.length"),
		post("parser on an MQTT server", nc, obj{"name": "m", "type": "MQTT_SERVER", "configuration": obj{"port": 1884, "parserType": "DIRECT"}}, bad, vf, "configuration.parserType"),
		post("maxMessageSize too small", nc, obj{"name": "m", "type": "MQTT_SERVER", "configuration": obj{"port": 1884, "maxMessageSize": 10}}, bad, vf, "configuration.maxMessageSize"),
		post("MQTT client without remoteHost", nc, obj{"name": "mc", "type": "MQTT_CLIENT", "configuration": obj{"remotePort": 1883}}, bad, vf, "configuration.remoteHost"),
		post("MQTT client with a bad topic filter", nc, obj{"name": "mc", "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "broker.local", "remotePort": 1883, "topics": []string{"a/#/b"}}}, bad, vf, "configuration.topics[0]"),
		post("MQTT client with a port key", nc, obj{"name": "mc", "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "broker.local", "remotePort": 1883, "port": 1}}, bad, vf, "configuration.port"),
		post("MQTT client", nc, obj{"id": "mqttc", "name": "mc", "type": "MQTT_CLIENT", "configuration": obj{"remoteHost": "10.1.2.3", "remotePort": 1883, "password": "broker-pass", "topicPrefix": "$share/g/", "topics": []string{"/+/+/properties/report"}}}, 201, "", ""),
		post("MQTT server", nc, obj{"id": "mqtt1", "name": "mqtt1", "type": "MQTT_SERVER", "configuration": obj{"port": 1883}}, 201, "", ""),
		ruleStep{name: "MQTT server gets the default maxMessageSize", method: http.MethodGet, path: nc + "/mqtt1", status: 200, check: func(t *testing.T, b map[string]any) {
			if got := b["configuration"].(map[string]any)["maxMessageSize"]; got != float64(8192) {
				t.Errorf("maxMessageSize = %v, want 8192", got)
			}
			if b["state"] != "disabled" || b["shareCluster"] != true {
				t.Errorf("state %v shareCluster %v, want disabled and true", b["state"], b["shareCluster"])
			}
		}},

		// Port conflicts, on save and on enable, per node.
		post("enabled TCP on 9100", nc, withState(tcp("tcp-a", 9100, nil), "enabled"), 201, "", ""),
		post("second enabled TCP on 9100", nc, withState(tcp("tcp-b", 9100, nil), "enabled"), conflict, "port_conflict", ""),
		post("WebSocket on 127.0.0.1:9100 collides with 0.0.0.0:9100", nc, withState(obj{"name": "ws", "type": "WEB_SOCKET_SERVER", "configuration": obj{"host": "127.0.0.1", "port": 9100}}, "enabled"), conflict, "port_conflict", ""),
		post("UDP on 9100 is another socket", nc, withState(obj{"id": "udp-a", "name": "udp", "type": "UDP", "configuration": obj{"port": 9100}}, "enabled"), 201, "", ""),
		post("CoAP on UDP 9100 collides", nc, withState(obj{"name": "coap", "type": "COAP_SERVER", "configuration": obj{"port": 9100}}, "enabled"), conflict, "port_conflict", ""),
		post("disabled TCP on 9100 may be saved", nc, tcp("tcp-c", 9100, nil), 201, "", ""),
		post("enabling it conflicts", nc+"/tcp-c/enable", nil, conflict, "port_conflict", ""),
		post("per-node on node2:9200", nc, withState(perNode("tcp-n2", "TCP_SERVER", entry("node2", obj{"port": 9200})), "enabled"), 201, "", ""),
		post("per-node on node3:9200 is another node", nc, withState(perNode("tcp-n3", "TCP_SERVER", entry("node3", obj{"port": 9200})), "enabled"), 201, "", ""),
		post("shared on 9200 collides with node2's", nc, withState(tcp("tcp-s", 9200, nil), "enabled"), conflict, "port_conflict", ""),
		put("moving an enabled component onto a taken port", nc+"/tcp-n3", perNode("tcp-n3", "TCP_SERVER", entry("node2", obj{"port": 9200})), conflict, "port_conflict", ""),
		post("disable is idempotent", nc+"/tcp-c/disable", nil, 200, "", ""),
		post("enable a free one", nc+"/tcp1/enable", nil, 200, "", ""),
		post("enable again is idempotent", nc+"/tcp1/enable", nil, 200, "", ""),
		post("disable it", nc+"/tcp1/disable", nil, 200, "", ""),
		post("enable a missing one", nc+"/missing/enable", nil, 404, "not_found", ""),

		// Certificates used by components, shared or per node.
		post("TLS HTTP server with cert1", nc, obj{"id": "tls1", "name": "tls1", "type": "HTTP_SERVER", "configuration": obj{"port": 8443, "secure": true, "certId": "cert1"}}, 201, "", ""),
		post("per-node TLS with cert1", nc, perNode("tls2", "TCP_SERVER", entry("node1", obj{"port": 9300, "secure": true, "certId": "cert1"})), 201, "", ""),
		del("certificate used by a shared config", "/api/v1/certificates/cert1", conflict, "certificate_in_use"),
		del("drop the shared user", nc+"/tls1", 204, ""),
		del("certificate used by a per-node config", "/api/v1/certificates/cert1", conflict, "certificate_in_use"),

		// Protocols.
		ruleStep{name: "package protocol for MQTT only", method: http.MethodPost, path: pr, upload: map[string]string{"id": "pkg-mqtt", "name": "MQTT codec", "type": "package"},
			file: nil, status: 201, check: func(t *testing.T, b map[string]any) {
				if _, leaked := b["package"]; leaked {
					t.Error("response carries the package bytes")
				}
				m, _ := b["manifest"].(map[string]any)
				if m == nil || fmt.Sprint(m["transports"]) != "[MQTT]" {
					t.Errorf("manifest = %v, want transports [MQTT]", b["manifest"])
				}
			}},
		post("local protocol", pr, obj{"id": "local1", "name": "local", "type": "local", "configuration": obj{"location": localDir}}, 201, "", ""),
		post("local protocol with a relative location", pr, obj{"name": "local", "type": "local", "configuration": obj{"location": "protocols/demo"}}, bad, vf, "configuration.location"),
		post("local protocol whose directory does not exist", pr, obj{"name": "local", "type": "local", "configuration": obj{"location": "/nonexistent/linkops/protocol"}}, bad, vf, "configuration.location"),
		post("package protocol without a file", pr, obj{"name": "p", "type": "package"}, bad, vf, "file"),
		post("unknown protocol type", pr, obj{"name": "p", "type": "jar"}, bad, vf, "type"),
		put("protocol type cannot change", pr+"/pkg-mqtt", obj{"name": "p", "type": "local", "configuration": obj{"location": localDir}}, bad, "type_immutable", "type"),
		put("official cannot be edited", pr+"/official", obj{"name": "mine", "type": "local", "configuration": obj{"location": localDir}}, conflict, "protocol_builtin", ""),
		del("official cannot be deleted", pr+"/official", conflict, "protocol_builtin"),
		ruleStep{name: "official is listed", method: http.MethodGet, path: pr + "?type=builtin", status: 200, check: func(t *testing.T, b map[string]any) {
			if b["total"] != float64(1) {
				t.Errorf("builtin protocols = %v, want the official one", b["total"])
			}
		}},

		// Gateways.
		post("TCP gateway on tcp1", gws, gw("gw-tcp", "tcp-server-gateway", "tcp1", "official"), 201, "", ""),
		post("second gateway on tcp1", gws, gw("gw-tcp2", "tcp-server-gateway", "tcp1", "official"), conflict, "network_in_use", ""),
		post("MQTT gateway 1 on mqtt1", gws, gw("gw-m1", "mqtt-server-gateway", "mqtt1", "official"), 201, "", ""),
		post("MQTT gateway 2 shares mqtt1", gws, gw("gw-m2", "mqtt-server-gateway", "mqtt1", "official"), 201, "", ""),
		post("official edge gateway shares mqtt1 too", gws, gw("gw-edge", "official-edge-gateway", "mqtt1", ""), 201, "", ""),
		post("official edge gateway with another protocol", gws, gw("", "official-edge-gateway", "", "pkg-mqtt"), bad, vf, "protocol"),
		post("component of the wrong type", gws, gw("", "mqtt-server-gateway", "tcp-c", "official"), bad, vf, "channelId"),
		post("component that does not exist", gws, gw("", "tcp-server-gateway", "nope", "official"), bad, vf, "channelId"),
		post("custom gateway without component", gws, gw("", "tcp-server-gateway", "", "official"), bad, vf, "channelId"),
		post("custom gateway without protocol", gws, gw("", "tcp-server-gateway", "tcp-c", ""), bad, vf, "protocol"),
		post("protocol that does not exist", gws, gw("", "tcp-server-gateway", "tcp-c", "nope"), bad, vf, "protocol"),
		post("protocol without the transport", gws, gw("", "tcp-server-gateway", "tcp-c", "pkg-mqtt"), bad, "protocol_transport_unsupported", "protocol"),
		post("unknown provider", gws, gw("", "lora", "", ""), bad, vf, "provider"),
		ruleStep{name: "transport and channel are derived", method: http.MethodGet, path: gws + "/gw-tcp", status: 200, check: func(t *testing.T, b map[string]any) {
			if b["transport"] != "TCP" || b["channel"] != "network" {
				t.Errorf("transport %v channel %v, want TCP and network", b["transport"], b["channel"])
			}
		}},
		put("provider cannot change", gws+"/gw-m1", gw("gw-m1", "tcp-server-gateway", "tcp-c", "official"), bad, "provider_immutable", "provider"),
		post("product on gw-m1", pd, obj{"id": "prod1", "name": "prod1", "gatewayId": "gw-m1"}, 201, "", ""),
		post("product on a gateway that does not exist", pd, obj{"name": "p", "gatewayId": "nope"}, bad, vf, "gatewayId"),
		put("protocol of a referenced gateway is fixed", gws+"/gw-m1", gw("gw-m1", "mqtt-server-gateway", "mqtt1", "pkg-mqtt"), conflict, "gateway_referenced", ""),
		put("protocol of an unreferenced gateway may change", gws+"/gw-m2", gw("gw-m2", "mqtt-server-gateway", "mqtt1", "pkg-mqtt"), 200, "", ""),
		del("protocol used by a gateway", pr+"/pkg-mqtt", conflict, "protocol_referenced"),
		post("enable gw-m1", gws+"/gw-m1/enable", nil, 200, "", ""),
		del("enabled gateway", gws+"/gw-m1", conflict, "gateway_enabled"),
		post("disable gw-m1", gws+"/gw-m1/disable", nil, 200, "", ""),
		del("gateway referenced by a product", gws+"/gw-m1", conflict, "gateway_referenced"),
		del("component used by a gateway", nc+"/tcp1", conflict, "network_referenced"),
		del("enabled component", nc+"/tcp-a", conflict, "network_enabled"),
		put("component type cannot change under a gateway", nc+"/tcp1", obj{"name": "tcp1", "type": "UDP", "configuration": obj{"port": 9001}}, conflict, "network_referenced", ""),

		// GB28181, cloud and channel gateways.
		post("SIP ID of 15 digits", gws, sip("", "340200000013200", 5060), bad, vf, "configuration.sipId"),
		post("SIP ID with letters", gws, sip("", "3402000000132000000A", 5060), bad, vf, "configuration.sipId"),
		post("SIP host not an IP", gws, obj{"name": "s", "provider": "gb28181-2016", "configuration": obj{"sipId": "34020000001320000001", "host": "sip.local", "port": 5060}}, bad, vf, "configuration.host"),
		post("GB28181 gateway", gws, sip("gb1", "34020000001320000001", 5060), 201, "", ""),
		ruleStep{name: "SIP domain defaults to the first 10 digits", method: http.MethodGet, path: gws + "/gb1", status: 200, check: func(t *testing.T, b map[string]any) {
			c := b["configuration"].(map[string]any)
			if c["domain"] != "3402000000" || b["transport"] != "SIP" {
				t.Errorf("domain %v transport %v", c["domain"], b["transport"])
			}
		}},
		post("SIP ID of 22 digits", gws, sip("", "3402000000132000000123", 9100), bad, vf, "configuration.sipId"),
		post("enabled GB28181 on 9100 collides", gws, withState(sip("gb2", "34020000001320000002", 9100), "enabled"), conflict, "port_conflict", ""),
		post("GB28181 takes no protocol", gws, obj{"name": "s", "provider": "gb28181-2016", "protocol": "official", "configuration": obj{"sipId": "34020000001320000001", "port": 5070}}, bad, vf, "protocol"),
		post("Ctwing without appSecret", gws, obj{"name": "c", "provider": "Ctwing", "protocol": "official", "configuration": obj{"appKey": "k"}}, bad, vf, "configuration.appSecret"),
		ruleStep{name: "Ctwing gateway shows its callbackUrl", method: http.MethodPost, path: gws, body: obj{"id": "ctw", "name": "c", "provider": "Ctwing", "protocol": "official", "configuration": obj{"appKey": "k", "appSecret": "ctwing-secret"}}, status: 201,
			check: func(t *testing.T, b map[string]any) {
				u, _ := b["callbackUrl"].(string)
				if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.Contains(u, "/api/v1/callbacks/ctw?token=") || b["transport"] != "HTTP" {
					t.Errorf("callbackUrl %q transport %v", u, b["transport"])
				}
			}},
		post("OneNet with an aesKey of a wrong length", gws, obj{"name": "o", "provider": "OneNet", "protocol": "official", "configuration": obj{"apiKey": "a", "notifyToken": "n", "aesKey": "k"}}, bad, vf, "configuration.aesKey"),
		post("cloud gateway with a network setting", gws, obj{"name": "o", "provider": "OneNet", "protocol": "official", "configuration": obj{"apiKey": "a", "notifyToken": "n", "aesKey": "0123456789abcdef", "port": 1}}, bad, vf, "configuration.port"),
		post("Modbus point in an unknown area", gws, obj{"name": "m", "provider": "modbus-tcp", "configuration": obj{"host": "10.0.0.9", "points": []obj{{"property": "t", "area": "attic", "address": 1, "dataType": "int16"}}}}, bad, vf, "configuration.points[0].area"),
		post("Modbus coil of type float32", gws, obj{"name": "m", "provider": "modbus-tcp", "configuration": obj{"host": "10.0.0.9", "points": []obj{{"property": "t", "area": "coil", "address": 1, "dataType": "float32"}}}}, bad, vf, "configuration.points[0].dataType"),
		post("Modbus gateway", gws, obj{"id": "mb", "name": "m", "provider": "modbus-tcp", "configuration": obj{"host": "10.0.0.9", "unitId": 1, "points": []obj{{"property": "temp", "area": "holding", "address": 0, "dataType": "float32", "scale": 0.1}}}}, 201, "", ""),

		// Media servers.
		post("media server without secret", ms, obj{"name": "m", "provider": "zlmedia", "configuration": obj{"apiHost": "127.0.0.1", "apiPort": 80, "rtpIp": "10.0.0.5", "rtpPort": 10000}}, bad, vf, "configuration.secret"),
		post("media server with a reversed port range", ms, media("", obj{"dynamicRtpPortRange": []int{30000, 20000}}), bad, vf, "configuration.dynamicRtpPortRange"),
		post("media server with an unknown provider", ms, func() obj { m := media("", nil); m["provider"] = "srs"; return m }(), bad, vf, "provider"),
		post("enabled media server", ms, withState(media("ms1", obj{"dynamicRtpPortRange": []int{30000, 30100}}), "enabled"), 201, "", ""),
		del("enabled media server", ms+"/ms1", conflict, "media_server_enabled"),
		post("disable it", ms+"/ms1/disable", nil, 200, "", ""),
		del("disabled media server", ms+"/ms1", 204, ""),

		// Products and devices.
		post("device of prod1", dv, obj{"id": "dev1", "name": "dev1", "productId": "prod1"}, 201, "", ""),
		post("device of a product that does not exist", dv, obj{"name": "d", "productId": "nope"}, bad, vf, "productId"),
		post("device without product", dv, obj{"name": "d"}, bad, vf, "productId"),
		ruleStep{name: "a new device is notActive whatever it says", method: http.MethodPost, path: dv, body: obj{"id": "dev2", "name": "d", "productId": "prod1", "state": "online", "serverId": "node9"}, status: 201,
			check: func(t *testing.T, b map[string]any) {
				if b["state"] != "notActive" || b["serverId"] != nil {
					t.Errorf("state %v serverId %v, want notActive and none", b["state"], b["serverId"])
				}
			}},
		put("gateway of a product with devices is fixed", pd+"/prod1", obj{"name": "prod1", "gatewayId": "gw-m2"}, conflict, "product_has_devices", ""),
		del("product with devices", pd+"/prod1", conflict, "product_has_devices"),
		put("device product cannot change", dv+"/dev1", obj{"name": "dev1", "productId": "prod2"}, bad, "product_immutable", "productId"),
		del("device", dv+"/dev1", 204, ""),
		del("device", dv+"/dev2", 204, ""),
		put("now the product may move", pd+"/prod1", obj{"name": "prod1", "gatewayId": "gw-m2"}, 200, "", ""),
		del("now gw-m1 may go", gws+"/gw-m1", 204, ""),
		del("gateway gone, protocol pkg-mqtt still used by gw-m2", pr+"/pkg-mqtt", conflict, "protocol_referenced"),
		del("product", pd+"/prod1", 204, ""),
		del("gw-m2", gws+"/gw-m2", 204, ""),
		del("pkg-mqtt is free", pr+"/pkg-mqtt", 204, ""),
		del("gw-tcp", gws+"/gw-tcp", 204, ""),
		del("tcp1 is free", nc+"/tcp1", 204, ""),
		del("tls2", nc+"/tls2", 204, ""),
		del("cert1 is free", "/api/v1/certificates/cert1", 204, ""),
	)
	return steps
}

// runRuleTable sends step i through clients[i % len(clients)].
func runRuleTable(t *testing.T, clients []*client.Client, steps []ruleStep, pkg []byte) {
	for i, st := range steps {
		c := clients[i%len(clients)]
		if st.upload != nil && st.file == nil {
			st.file = pkg
		}
		status, body := send(t, c, st)
		if status != st.status {
			t.Errorf("step %d %q: %s %s → %d %s, want %d", i, st.name, st.method, st.path, status, body, st.status)
			continue
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if status >= 400 {
			if m["code"] != st.code {
				t.Errorf("step %d %q: code %v, want %s (%s)", i, st.name, m["code"], st.code, body)
			}
			if st.field != "" && !hasField(m, st.field) {
				t.Errorf("step %d %q: errors %v do not name %s", i, st.name, m["errors"], st.field)
			}
			if errs, _ := m["errors"].([]any); st.field != "" && len(errs) != 1 {
				t.Errorf("step %d %q: errors %v, want only %s", i, st.name, errs, st.field)
			}
			continue
		}
		if st.check != nil {
			st.check(t, m)
		}
	}
}

func hasField(m map[string]any, field string) bool {
	errs, _ := m["errors"].([]any)
	for _, e := range errs {
		if em, ok := e.(map[string]any); ok && em["field"] == field {
			return true
		}
	}
	return false
}

// send makes one request of a step and returns the status and body.
func send(t *testing.T, c *client.Client, st ruleStep) (int, []byte) {
	t.Helper()
	var body io.Reader
	ct := "application/json"
	switch {
	case st.upload != nil:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range st.upload {
			_ = mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file", "protocol.zip")
		_, _ = fw.Write(st.file)
		_ = mw.Close()
		body, ct = &buf, mw.FormDataContentType()
	case st.body != nil:
		b, _ := json.Marshal(st.body)
		body = bytes.NewReader(b)
	}
	resp, err := c.Raw(context.Background(), st.method, st.path, body, ct, nil)
	if p, ok := err.(*client.Problem); ok {
		b, _ := json.Marshal(p)
		return p.Status, b
	}
	if err != nil {
		t.Fatalf("%s %s: %v", st.method, st.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestOperationRulesOnOneNode(t *testing.T) {
	n := testutil.StartNode(t, "")
	ca := testutil.NewCA(t)
	runRuleTable(t, []*client.Client{n.Admin(t)}, ruleTable(t, ca, testutil.LocalProtocolDir(t, "local1", "TCP", "MQTT")), testutil.GoodProtocolZip(t, "pkg-mqtt", "MQTT"))
}

func TestOperationRulesThroughEveryNodeOfACluster(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	ca := testutil.NewCA(t)
	var clients []*client.Client
	for _, n := range nodes {
		clients = append(clients, n.Admin(t))
	}
	runRuleTable(t, clients, ruleTable(t, ca, testutil.LocalProtocolDir(t, "local1", "TCP", "MQTT")), testutil.GoodProtocolZip(t, "pkg-mqtt", "MQTT"))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
