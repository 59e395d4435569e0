package resource

import (
	"path/filepath"
	"strings"
	"time"
)

// Protocol types. "builtin" is the type of protocols that ship with linkops; nobody can
// create one.
const (
	ProtocolPackage = "package"
	ProtocolLocal   = "local"
	ProtocolBuiltin = "builtin"
	// OfficialProtocolID is the JetLinks official protocol (SPEC §5.2).
	OfficialProtocolID = "official"
)

// Transports a protocol may support (SPEC §4.2), spelled as in manifests.
var Transports = []string{"MQTT", "TCP", "UDP", "CoAP", "HTTP", "WebSocket"}

// Protocol is a device message codec (协议管理): a zip package kept in the replicated state,
// a directory on every node (local, for development), or the built-in official protocol.
type Protocol struct {
	Meta
	Name          string         `json:"name"`
	Type          string         `json:"type"`
	Description   string         `json:"description,omitempty"`
	Configuration ProtocolConfig `json:"configuration"`

	// Read-only, derived from the package or the local directory when it is saved.
	Manifest      *ProtocolManifest `json:"manifest,omitempty"`
	PackageSize   int               `json:"packageSize,omitempty"`
	PackageSHA256 string            `json:"packageSha256,omitempty"`
	// Generation counts reloads of a local protocol; every node reloads when it changes.
	Generation int  `json:"generation"`
	Builtin    bool `json:"builtin,omitempty"`

	// Package is the zip itself: replicated so every node has it, never shown (it can be
	// large); only PUT /{id}/package replaces it.
	Package []byte `json:"package,omitempty" secret:"true" internal:"true"`
}

// ProtocolConfig holds a local protocol's directory.
type ProtocolConfig struct {
	// Location is an absolute directory with the same layout on every node.
	Location string `json:"location,omitempty"`
}

// ProtocolManifest is manifest.json of a package: what the codec calls itself and which
// transports it speaks.
type ProtocolManifest struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Transports []string `json:"transports"`
	Main       string   `json:"main"`
}

// DisplayName is the protocol's name, for search and sorting.
func (p *Protocol) DisplayName() string { return p.Name }

// Supports reports whether the protocol speaks a transport; a builtin speaks them all.
func (p *Protocol) Supports(transport string) bool {
	if p.Builtin {
		return true
	}
	if p.Manifest == nil {
		return false
	}
	for _, t := range p.Manifest.Transports {
		if strings.EqualFold(t, transport) {
			return true
		}
	}
	return false
}

// OfficialProtocol is the built-in JetLinks official protocol: MQTT topics
// /{productId}/{deviceId}/... with JSON payloads, over every transport.
var OfficialProtocol = &Protocol{
	Meta: Meta{ID: OfficialProtocolID, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	Name: "JetLinks official protocol", Type: ProtocolBuiltin, Builtin: true,
	Description: "Built in: JSON messages on /{productId}/{deviceId}/... topics and paths, over every transport.",
	Manifest: &ProtocolManifest{ID: OfficialProtocolID, Name: "JetLinks official protocol", Version: "1.0",
		Transports: append([]string(nil), Transports...)},
}

// Protocols is the protocol collection.
var Protocols = Register(&Kind{
	Name:     "protocols",
	New:      func() Object { return new(Protocol) },
	Filters:  map[string]func(Object) string{"type": func(o Object) string { return o.(*Protocol).Type }},
	Builtins: []Object{OfficialProtocol},
})

// Validate checks the fields a client sets. The package itself is checked by the protocol
// package when it is uploaded; a local directory when it is saved or reloaded.
func (p *Protocol) Validate() Errors {
	var errs Errors
	ValidateID(&errs, p.ID)
	ValidateName(&errs, "name", p.Name)
	ValidateDescription(&errs, "description", p.Description)
	switch p.Type {
	case ProtocolPackage:
		if p.Configuration.Location != "" {
			errs.Add("configuration.location", "is a setting of local protocols only")
		}
	case ProtocolLocal:
		loc := p.Configuration.Location
		switch {
		case loc == "":
			errs.Add("configuration.location", "is required: the absolute directory that holds manifest.json on every node")
		case !filepath.IsAbs(loc):
			errs.Add("configuration.location", "must be an absolute directory, like /opt/protocols/demo")
		case strings.Contains(loc+"/", "/../") || strings.Contains(loc+"/", "/./"):
			errs.Add("configuration.location", "must be a clean path without . or .. elements")
		}
	case "":
		errs.Add("type", "is required: package (upload a .zip) or local (a directory on every node)")
	case ProtocolBuiltin:
		errs.Add("type", "builtin protocols ship with linkops and cannot be created")
	default:
		errs.Add("type", "%q is not a protocol type; use package or local", p.Type)
	}
	return errs
}
