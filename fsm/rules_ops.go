package fsm

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/linkops/linkops/resource"
)

// The operations rules of the manual (运维管理) and SPEC §4.1–4.6. They run inside the
// apply transaction, so of two racing writes that together would break one, the second
// applied is refused on every replica.
func init() {
	AddRule(resource.Certificates, certificateNotInUse)
	AddRule(resource.NetworkComponents, componentRules)
	AddRule(resource.Gateways, gatewayRules)
	AddRule(resource.Protocols, protocolRules)
	AddRule(resource.MediaServers, mediaServerRules)
	AddRule(resource.Products, productRules)
	AddRule(resource.Devices, deviceRules)
}

// lookup returns the stored (or built-in) resource of kind with id, or nil.
func lookup(txn *memdb.Txn, kind *resource.Kind, id string) resource.Object {
	if b, ok := kind.Builtin(id); ok {
		return b
	}
	raw, err := txn.First(kind.Name, "id", id)
	if err != nil {
		panic(fmt.Sprintf("fsm: lookup %s: %v", kind.Name, err)) // table from the schema
	}
	if raw == nil {
		return nil
	}
	return raw.(resource.Object)
}

// ids joins the ids of objs for a message, at most five of them.
func ids(objs []resource.Object) string {
	var s []string
	for i, o := range objs {
		if i == 5 {
			s = append(s, fmt.Sprintf("and %d more", len(objs)-5))
			break
		}
		s = append(s, fmt.Sprintf("%q", o.Base().ID))
	}
	return strings.Join(s, ", ")
}

// others drops the object with id from objs.
func others(objs []resource.Object, id string) []resource.Object {
	out := objs[:0:0]
	for _, o := range objs {
		if o.Base().ID != id {
			out = append(out, o)
		}
	}
	return out
}

func certificateNotInUse(txn *memdb.Txn, old, next resource.Object) error {
	if next != nil {
		return nil
	}
	if users := referrers(txn, resource.NetworkComponents, "certId", old.Base().ID); len(users) > 0 {
		return Refuse("certificate_in_use", "certificate %q is used by network component(s) %s; change or delete them first", old.Base().ID, ids(users))
	}
	return nil
}

func componentRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		c := old.(*resource.NetworkComponent)
		if c.Enabled() {
			return Refuse("network_enabled", "network component %q is enabled; disable it before deleting it", c.ID)
		}
		if gws := referrers(txn, resource.Gateways, "channelId", c.ID); len(gws) > 0 {
			return Refuse("network_referenced", "network component %q is used by gateway(s) %s; delete them or pick another component first", c.ID, ids(gws))
		}
		return nil
	}
	c := next.(*resource.NetworkComponent)
	paths, cfgs := c.Configs()
	for i, cfg := range cfgs {
		if cfg.CertID != "" && lookup(txn, resource.Certificates, cfg.CertID) == nil {
			return Invalid(paths[i]+".certId", "there is no certificate %q", cfg.CertID)
		}
	}
	if old != nil && old.(*resource.NetworkComponent).Type != c.Type {
		if gws := referrers(txn, resource.Gateways, "channelId", c.ID); len(gws) > 0 {
			return Refuse("network_referenced", "network component %q is used by gateway(s) %s, which need a %s; its type cannot change", c.ID, ids(gws), old.(*resource.NetworkComponent).Type)
		}
	}
	if c.Enabled() {
		return portsFree(txn, c.ID, "network component", c.Bindings())
	}
	return nil
}

// portsFree refuses bindings that collide with those of an enabled component or SIP
// gateway other than self on a common node.
func portsFree(txn *memdb.Txn, self, what string, mine []resource.Binding) error {
	if len(mine) == 0 {
		return nil
	}
	check := func(kind, id string, theirs []resource.Binding) error {
		for _, a := range mine {
			for _, b := range theirs {
				if a.Conflicts(b) {
					where := a.Where()
					if a.Node == "" {
						where = b.Where()
					}
					return Refuse("port_conflict", "%s %q would bind %s %s:%d on %s, which enabled %s %q already binds (%s:%d)",
						what, self, strings.ToUpper(a.Transport), a.Host, a.Port, where, kind, id, b.Host, b.Port)
				}
			}
		}
		return nil
	}
	it, _ := txn.Get(resource.NetworkComponents.Name, "id")
	for raw := it.Next(); raw != nil; raw = it.Next() {
		o := raw.(*resource.NetworkComponent)
		if o.ID != self && o.Enabled() {
			if err := check("network component", o.ID, o.Bindings()); err != nil {
				return err
			}
		}
	}
	it, _ = txn.Get(resource.Gateways.Name, "id")
	for raw := it.Next(); raw != nil; raw = it.Next() {
		o := raw.(*resource.Gateway)
		if o.ID != self && o.Enabled() {
			if err := check("gateway", o.ID, o.Bindings()); err != nil {
				return err
			}
		}
	}
	return nil
}

func gatewayRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		g := old.(*resource.Gateway)
		if g.Enabled() {
			return Refuse("gateway_enabled", "gateway %q is enabled; disable it before deleting it", g.ID)
		}
		if ps := referrers(txn, resource.Products, "gatewayId", g.ID); len(ps) > 0 {
			return Refuse("gateway_referenced", "gateway %q is used by product(s) %s; move them to another gateway first", g.ID, ids(ps))
		}
		return nil
	}
	g := next.(*resource.Gateway)
	if old != nil {
		o := old.(*resource.Gateway)
		if o.Provider != g.Provider {
			return Reject("provider_immutable", "provider", "a gateway's provider cannot change (it is %s); create a new gateway instead", o.Provider)
		}
		if o.Protocol != g.Protocol {
			if ps := referrers(txn, resource.Products, "gatewayId", g.ID); len(ps) > 0 {
				return Refuse("gateway_referenced", "gateway %q is used by product(s) %s, so its protocol cannot change", g.ID, ids(ps))
			}
		}
	}
	p, _ := resource.ProviderByName(g.Provider)
	if g.ChannelID != "" {
		raw := lookup(txn, resource.NetworkComponents, g.ChannelID)
		if raw == nil {
			return Invalid("channelId", "there is no network component %q", g.ChannelID)
		}
		c := raw.(*resource.NetworkComponent)
		if c.Type != p.Component {
			return Invalid("channelId", "network component %q is a %s; provider %s needs a %s", c.ID, c.Type, p.Name, p.Component)
		}
		// Only an MQTT server can serve several gateways (seed: 除MQTT服务网络组件，其它网络组件均不可被多个网关使用).
		if c.Type != resource.TypeMQTTServer {
			if users := others(referrers(txn, resource.Gateways, "channelId", c.ID), g.ID); len(users) > 0 {
				return Refuse("network_in_use", "network component %q is already used by gateway %s; only an MQTT_SERVER component may serve more than one gateway", c.ID, ids(users))
			}
		}
	}
	if g.Protocol != "" {
		raw := lookup(txn, resource.Protocols, g.Protocol)
		if raw == nil {
			return Invalid("protocol", "there is no protocol %q", g.Protocol)
		}
		if pr := raw.(*resource.Protocol); !pr.Supports(g.Transport) {
			return Reject("protocol_transport_unsupported", "protocol", "protocol %q supports %s, not %s", pr.ID, strings.Join(pr.Manifest.Transports, ", "), g.Transport)
		}
	}
	if g.Enabled() {
		return portsFree(txn, g.ID, "gateway", g.Bindings())
	}
	return nil
}

func protocolRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		if gws := referrers(txn, resource.Gateways, "protocol", old.Base().ID); len(gws) > 0 {
			return Refuse("protocol_referenced", "protocol %q is used by gateway(s) %s; change them first", old.Base().ID, ids(gws))
		}
		return nil
	}
	if old == nil {
		return nil
	}
	o, p := old.(*resource.Protocol), next.(*resource.Protocol)
	if o.Type != p.Type {
		return Reject("type_immutable", "type", "a protocol's type cannot change (it is %s); create a new protocol instead", o.Type)
	}
	// A new package must still speak every transport its gateways use.
	for _, raw := range referrers(txn, resource.Gateways, "protocol", p.ID) {
		if g := raw.(*resource.Gateway); !p.Supports(g.Transport) {
			return Refuse("protocol_referenced", "gateway %q uses protocol %q over %s, which the new version no longer supports", g.ID, p.ID, g.Transport)
		}
	}
	return nil
}

func mediaServerRules(_ *memdb.Txn, old, next resource.Object) error {
	if next == nil && old.(*resource.MediaServer).Enabled() {
		return Refuse("media_server_enabled", "media server %q is enabled; disable it before deleting it", old.Base().ID)
	}
	return nil
}

func productRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		if n := countOf(txn, countKey(resource.Devices, "productId", old.Base().ID)); n > 0 {
			return Refuse("product_has_devices", "product %q has %d device(s); delete them first", old.Base().ID, n)
		}
		return nil
	}
	p := next.(*resource.Product)
	if p.GatewayID != "" && lookup(txn, resource.Gateways, p.GatewayID) == nil {
		return Invalid("gatewayId", "there is no gateway %q", p.GatewayID)
	}
	if old != nil && old.(*resource.Product).GatewayID != p.GatewayID {
		if n := countOf(txn, countKey(resource.Devices, "productId", p.ID)); n > 0 {
			return Refuse("product_has_devices", "product %q has %d device(s), so its gateway cannot change", p.ID, n)
		}
	}
	return nil
}

func deviceRules(txn *memdb.Txn, old, next resource.Object) error {
	if next == nil {
		return nil
	}
	d := next.(*resource.Device)
	if old != nil && old.(*resource.Device).ProductID != d.ProductID {
		return Reject("product_immutable", "productId", "a device's product cannot change (it is %s)", old.(*resource.Device).ProductID)
	}
	if lookup(txn, resource.Products, d.ProductID) == nil {
		return Invalid("productId", "there is no product %q", d.ProductID)
	}
	return nil
}
