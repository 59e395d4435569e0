package resource

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"time"
)

// Device states (read-only: sessions set them).
const (
	DeviceNotActive = "notActive"
	DeviceOnline    = "online"
	DeviceOffline   = "offline"
)

// MaxBatchDevices bounds POST /api/v1/devices/batch.
const MaxBatchDevices = 10000

var securePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// Product groups devices that reach the platform through one gateway and share the
// credentials of the official protocol (secureId/secureKey).
type Product struct {
	Meta
	Name      string `json:"name"`
	GatewayID string `json:"gatewayId,omitempty"`
	SecureID  string `json:"secureId"`
	// SecureKey signs device logins of the official protocol. Write-only.
	SecureKey   string `json:"secureKey,omitempty" secret:"true"`
	Description string `json:"description,omitempty"`
}

// DisplayName is the product's name, for search and sorting.
func (p *Product) DisplayName() string { return p.Name }

// Products is the product collection.
var Products = Register(&Kind{
	Name:    "products",
	New:     func() Object { return new(Product) },
	Filters: map[string]func(Object) string{"gatewayId": func(o Object) string { return o.(*Product).GatewayID }},
	Refs:    map[string]func(Object) []string{"gatewayId": func(o Object) []string { return nonEmpty(o.(*Product).GatewayID) }},
})

// Validate checks the product's fields; a new product without a secureId gets a
// generated one.
func (p *Product) Validate() Errors {
	var errs Errors
	ValidateID(&errs, p.ID)
	ValidateName(&errs, "name", p.Name)
	ValidateDescription(&errs, "description", p.Description)
	if p.GatewayID != "" && !idPattern.MatchString(p.GatewayID) {
		errs.Add("gatewayId", "must be a gateway id")
	}
	if p.SecureID == "" {
		p.SecureID = randomHex(8)
	} else if !securePattern.MatchString(p.SecureID) {
		errs.Add("secureId", "must be 1-64 letters, digits, '_', '.', '@' or '-'")
	}
	// No key is generated: it could never be read back (secrets are write-only), so the
	// user sets it, and devices of a product without one cannot log in with the official
	// protocol.
	if p.SecureKey != "" && (len(p.SecureKey) < 8 || len(p.SecureKey) > 128) {
		errs.Add("secureKey", "must be 8 to 128 characters")
	}
	return errs
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Device is one registered device. Its session fields are read-only: the node holding the
// device's session sets them.
type Device struct {
	Meta
	Name        string `json:"name"`
	ProductID   string `json:"productId"`
	Description string `json:"description,omitempty"`

	// Session fields (SPEC §4.6): joined into every answer from the presence table and the
	// nodes' property stores, never stored in the record.
	State           string         `json:"state"`
	ServerID        string         `json:"serverId,omitempty"`
	OnlineAt        *time.Time     `json:"onlineAt,omitempty"`
	OfflineAt       *time.Time     `json:"offlineAt,omitempty"`
	LastMessageAt   *time.Time     `json:"lastMessageAt,omitempty"`
	FirmwareVersion string         `json:"firmwareVersion,omitempty"`
	Properties      map[string]any `json:"properties,omitempty"`
	PropertiesAt    *time.Time     `json:"propertiesAt,omitempty"`
	// Missing names the nodes that did not answer for the properties: what is shown may
	// lack their newer values.
	Missing []string `json:"missing,omitempty"`
}

// DisplayName is the device's name, for search and sorting.
func (d *Device) DisplayName() string { return d.Name }

// Devices is the device collection.
var Devices = Register(&Kind{
	Name: "devices",
	New:  func() Object { return new(Device) },
	Filters: map[string]func(Object) string{
		"productId": func(o Object) string { return o.(*Device).ProductID },
		"state":     func(o Object) string { return o.(*Device).State },
	},
	// A million devices must fit a node (SPEC §6 B7): count them per product instead of
	// indexing them.
	Counts: map[string]func(Object) string{"productId": func(o Object) string { return o.(*Device).ProductID }},
})

// Validate checks the fields a client sets, prefixing field paths with prefix (for the
// entries of a batch).
func (d *Device) Validate(prefix string) Errors {
	var errs Errors
	if d.ID != "" && !idPattern.MatchString(d.ID) {
		errs.Add(prefix+"id", "must match ^[A-Za-z0-9_-]{1,64}$")
	}
	ValidateName(&errs, prefix+"name", d.Name)
	ValidateDescription(&errs, prefix+"description", d.Description)
	if d.ProductID == "" {
		errs.Add(prefix+"productId", "is required: the id of the device's product")
	} else if !idPattern.MatchString(d.ProductID) {
		errs.Add(prefix+"productId", "must be a product id")
	}
	return errs
}

// KeepSession clears the read-only session fields a client sent: they are joined into
// answers, never stored (old is unused; kept so callers read as they did).
func (d *Device) KeepSession(_ *Device) {
	d.State, d.ServerID, d.OnlineAt, d.OfflineAt, d.LastMessageAt = DeviceNotActive, "", nil, nil, nil
	d.FirmwareVersion, d.Properties, d.PropertiesAt, d.Missing = "", nil, nil, nil
}
