package listeners

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// Desired reads from one view what node nodeID must run: every enabled component whose
// placement has a configuration for it, keyed by component id, each with the certificate
// it names. Reading components and certificates through one view means a reconcile never
// pairs a component with a certificate from another moment, and the view's watch set
// wakes the caller when either changes.
func Desired(v *fsm.View, nodeID string, allowRemote []netip.Prefix) map[string]Spec {
	out := map[string]Spec{}
	for _, o := range v.List(resource.NetworkComponents) {
		c := o.(*resource.NetworkComponent)
		if c.State != resource.StateEnabled {
			continue
		}
		cfg, ok := c.Placement().For(nodeID)
		if !ok {
			continue
		}
		spec := Spec{ComponentID: c.ID, Type: c.Type, Config: *cfg}
		if spec.Type == resource.TypeMQTTClient {
			spec.AllowRemote = allowRemote
		}
		if cfg.CertID != "" {
			cert, err := v.Get(resource.Certificates, cfg.CertID)
			switch {
			case errors.Is(err, fsm.ErrNotFound):
				spec.certErr = fmt.Errorf("certificate %s does not exist", cfg.CertID)
			case err != nil:
				spec.certErr = err
			default:
				spec.cert = cert.(*resource.Certificate)
			}
		}
		out[c.ID] = spec
	}
	return out
}
