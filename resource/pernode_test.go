package resource_test

import (
	"testing"

	"github.com/linkops/linkops/resource"
)

// TestPlacementForNode: a shared configuration serves every node; a per-node one serves
// exactly the nodes it names, for components and GB28181 gateways alike.
func TestPlacementForNode(t *testing.T) {
	shared := &resource.NetworkComponent{Configuration: &resource.NetworkConfig{Port: 1883}}
	if c, ok := shared.Placement().For("any-node"); !ok || c.Port != 1883 {
		t.Fatalf("shared For = %v, %v", c, ok)
	}
	no := false
	perNode := &resource.NetworkComponent{ShareCluster: &no, Cluster: []resource.NodeNetConfig{
		{ServerID: "node1", Configuration: resource.NetworkConfig{Host: "127.0.0.1", Port: 1}},
		{ServerID: "node2", Configuration: resource.NetworkConfig{Host: "127.0.0.2", Port: 2}},
	}}
	for node, want := range map[string]int{"node1": 1, "node2": 2} {
		if c, ok := perNode.Placement().For(node); !ok || c.Port != want {
			t.Fatalf("For(%s) = %v, %v; want port %d", node, c, ok, want)
		}
	}
	if c, ok := perNode.Placement().For("node3"); ok {
		t.Fatalf("For(node3) = %v: a node without an entry runs nothing", c)
	}
	if all := perNode.Placement().All(); len(all) != 2 || all[1].Node != "node2" {
		t.Fatalf("All = %+v", all)
	}
	gw := &resource.GatewayConfig{ShareCluster: &no, Cluster: []resource.NodeSIPConfig{{ServerID: "node2", Configuration: resource.SIPNodeConfig{Port: 5060}}}}
	if c, ok := gw.SIPPlacement().For("node2"); !ok || c.Port != 5060 {
		t.Fatalf("SIP For(node2) = %v, %v", c, ok)
	}
	if _, ok := gw.SIPPlacement().For("node1"); ok {
		t.Fatal("SIP For(node1) found an entry")
	}
}
