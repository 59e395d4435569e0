package resource

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Firmware sign methods (SPEC §4.7).
const (
	SignMD5    = "md5"
	SignSHA256 = "sha256"
)

// MaxVersionOrder bounds versionOrder (SPEC §4.7: 1–99999).
const MaxVersionOrder = 99999

// Firmware is one uploaded firmware file (远程升级): the record holds the blob's key, size
// and hashes, never its bytes, which live in the blob store.
type Firmware struct {
	Meta
	Name      string `json:"name"`
	ProductID string `json:"productId"`
	Version   string `json:"version"`
	// VersionOrder orders a product's firmwares: devices pulling upgrade to higher orders.
	VersionOrder int    `json:"versionOrder"`
	SignMethod   string `json:"signMethod"`
	// Sign is the file's hash by SignMethod, in lower-case hex (it is checked on upload).
	Sign        string             `json:"sign"`
	Properties  []FirmwareProperty `json:"properties,omitempty"`
	Description string             `json:"description,omitempty"`

	// Read-only, set by the upload.
	Size   int64  `json:"size"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
	// URL is derived for each answer: <public-url>/api/v1/firmwares/{id}/file.
	URL string `json:"url,omitempty"`
	// BlobKey names the file in the blob store; internal (never shown, kept on update).
	BlobKey string `json:"blobKey,omitempty" secret:"true" internal:"true"`
}

// FirmwareProperty is one of the firmware's extra settings (其他配置), sent to devices as the
// upgrade's parameters.
type FirmwareProperty struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Value string `json:"value"`
}

// DisplayName is the firmware's name, for search and sorting.
func (f *Firmware) DisplayName() string { return f.Name }

// Parameters are the properties as the upgrade message's parameters, {id: value}.
func (f *Firmware) Parameters() map[string]any {
	if len(f.Properties) == 0 {
		return nil
	}
	out := make(map[string]any, len(f.Properties))
	for _, p := range f.Properties {
		out[p.ID] = p.Value
	}
	return out
}

// Firmwares is the firmware collection.
var Firmwares = Register(&Kind{
	Name: "firmwares",
	New:  func() Object { return new(Firmware) },
	Filters: map[string]func(Object) string{
		"productId": func(o Object) string { return o.(*Firmware).ProductID },
		"version":   func(o Object) string { return o.(*Firmware).Version },
	},
	Refs: map[string]func(Object) []string{"productId": func(o Object) []string { return nonEmpty(o.(*Firmware).ProductID) }},
})

// Validate checks the fields a client sets. The sign may be empty before the upload
// (computed then); when given it must be hex of the method's length.
func (f *Firmware) Validate() Errors {
	var errs Errors
	ValidateID(&errs, f.ID)
	ValidateName(&errs, "name", f.Name)
	ValidateDescription(&errs, "description", f.Description)
	if f.ProductID == "" {
		errs.Add("productId", "is required: the id of the product whose devices run this firmware")
	} else if !idPattern.MatchString(f.ProductID) {
		errs.Add("productId", "must be a product id")
	}
	switch n := utf8.RuneCountInString(f.Version); {
	case strings.TrimSpace(f.Version) == "":
		errs.Add("version", "is required, like 1.2.0")
	case n > MaxNameLen:
		errs.Add("version", "must be at most %d characters (got %d)", MaxNameLen, n)
	}
	if f.VersionOrder < 1 || f.VersionOrder > MaxVersionOrder {
		errs.Add("versionOrder", "must be an integer from 1 to %d (devices pulling upgrade to higher orders)", MaxVersionOrder)
	}
	f.SignMethod = strings.ToLower(f.SignMethod)
	want := 0
	switch f.SignMethod {
	case SignMD5:
		want = 32
	case SignSHA256:
		want = 64
	case "":
		errs.Add("signMethod", "is required: md5 or sha256")
	default:
		errs.Add("signMethod", "%q is not a sign method; use md5 or sha256", f.SignMethod)
	}
	if f.Sign != "" {
		f.Sign = strings.ToLower(strings.TrimSpace(f.Sign))
		if _, err := hex.DecodeString(f.Sign); err != nil || (want > 0 && len(f.Sign) != want) {
			errs.Add("sign", "must be the file's %s as %d hex digits", f.SignMethod, want)
		}
	}
	seen := map[string]bool{}
	for i, p := range f.Properties {
		path := fmt.Sprintf("properties[%d]", i)
		switch {
		case strings.TrimSpace(p.ID) == "":
			errs.Add(path+".id", "is required")
		case seen[p.ID]:
			errs.Add(path+".id", "%q is given twice", p.ID)
		case utf8.RuneCountInString(p.ID) > MaxNameLen:
			errs.Add(path+".id", "must be at most %d characters", MaxNameLen)
		}
		seen[p.ID] = true
		if utf8.RuneCountInString(p.Name) > MaxNameLen {
			errs.Add(path+".name", "must be at most %d characters", MaxNameLen)
		}
		if len(p.Value) > 4096 {
			errs.Add(path+".value", "must be at most 4096 bytes")
		}
	}
	if len(f.Properties) > 100 {
		errs.Add("properties", "holds %d entries; at most 100", len(f.Properties))
	}
	return errs
}

// SignOf picks the hash the firmware is signed with.
func (f *Firmware) SignOf(md5hex, sha256hex string) string {
	if f.SignMethod == SignMD5 {
		return md5hex
	}
	return sha256hex
}
