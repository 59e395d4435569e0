package resource_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/linkops/linkops/resource"
)

var when = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func fullUser() *resource.User {
	return &resource.User{
		Meta:          resource.Meta{ID: "u1", CreatedAt: when, UpdatedAt: when.Add(time.Hour), Index: 42},
		Username:      "alice",
		Password:      "plain-text-password",
		PasswordHash:  "$2a$10$abcdefghijklmnopqrstuv",
		Role:          resource.RoleAdmin,
		PasswordSetAt: when,
	}
}

func fullCert() *resource.Certificate {
	return &resource.Certificate{
		Meta:        resource.Meta{ID: "web", Index: 7},
		Name:        "web",
		Cert:        "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n",
		Key:         "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n-----END PRIVATE KEY-----\n",
		Trust:       "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
		Description: "d",
		Subject:     "CN=web",
		DNSNames:    []string{"web.example"},
		NotAfter:    when,
	}
}

func TestRedactedUser(t *testing.T) {
	orig := fullUser()
	keep := *orig
	got := resource.Redacted(orig)

	if got == orig {
		t.Fatal("Redacted returned the original pointer, not a copy")
	}
	if got.Password != "" || got.PasswordHash != "" {
		t.Errorf("secrets survive: password %q, hash %q", got.Password, got.PasswordHash)
	}
	want := keep
	want.Password, want.PasswordHash = "", ""
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("non-secret fields changed:\ngot  %+v\nwant %+v", *got, want)
	}
	if !reflect.DeepEqual(*orig, keep) {
		t.Errorf("Redacted modified the original: %+v", *orig)
	}
}

func TestRedactedCertificate(t *testing.T) {
	orig := fullCert()
	keep := *orig
	got := resource.Redacted(orig)
	if got.Key != "" {
		t.Errorf("Key survives: %q", got.Key)
	}
	want := keep
	want.Key = ""
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("non-secret fields changed:\ngot  %+v\nwant %+v", *got, want)
	}
	if orig.Key != keep.Key || !reflect.DeepEqual(*orig, keep) {
		t.Errorf("Redacted modified the original: %+v", *orig)
	}
	// The copy is independent of the original for the fields it owns.
	got.Name = "changed"
	if orig.Name != "web" {
		t.Error("changing the redacted copy changed the original")
	}
}

func TestRedactedAsObjectAndNil(t *testing.T) {
	var obj resource.Object = fullUser()
	red := resource.Redacted(obj)
	if u := red.(*resource.User); u.Password != "" || u.PasswordHash != "" || u.Username != "alice" {
		t.Errorf("Redacted through the Object interface = %+v", u)
	}
	if obj.(*resource.User).PasswordHash == "" {
		t.Error("original modified")
	}
	var nilUser *resource.User
	if got := resource.Redacted(nilUser); got != nil {
		t.Errorf("Redacted(nil) = %v", got)
	}
}

func TestKeepSecretsUser(t *testing.T) {
	prev := fullUser()
	next := &resource.User{Meta: resource.Meta{ID: "u1"}, Username: "alice2", Role: ""}
	resource.KeepSecrets(next, prev)
	if next.Password != prev.Password || next.PasswordHash != prev.PasswordHash {
		t.Errorf("empty secrets not kept: %+v", next)
	}
	// Non-secret fields are never copied, even when empty.
	if next.Role != "" || next.Username != "alice2" || !next.PasswordSetAt.IsZero() || next.Index != 0 || !next.CreatedAt.IsZero() {
		t.Errorf("non-secret fields copied: %+v", next)
	}
	if prev.PasswordHash != "$2a$10$abcdefghijklmnopqrstuv" {
		t.Error("prev modified")
	}

	// A secret the caller sets wins over the stored one.
	next = &resource.User{Password: "new-password"}
	resource.KeepSecrets(next, prev)
	if next.Password != "new-password" {
		t.Errorf("given password replaced by %q", next.Password)
	}
	if next.PasswordHash != prev.PasswordHash {
		t.Errorf("empty hash not kept: %q", next.PasswordHash)
	}
}

func TestKeepSecretsCertificate(t *testing.T) {
	prev := fullCert()
	next := &resource.Certificate{Meta: resource.Meta{ID: "web"}, Name: "web", Cert: "NEW"}
	resource.KeepSecrets(next, prev)
	if next.Key != prev.Key {
		t.Errorf("empty key not kept: %q", next.Key)
	}
	if next.Trust != "" || next.Cert != "NEW" || next.Subject != "" || next.DNSNames != nil || next.Index != 0 {
		t.Errorf("non-secret fields copied: %+v", next)
	}
	next = &resource.Certificate{Key: "OTHER KEY"}
	resource.KeepSecrets(next, prev)
	if next.Key != "OTHER KEY" {
		t.Errorf("given key replaced by %q", next.Key)
	}
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("证", 64), true}, // 192 bytes, 64 characters
		{strings.Repeat("证", 65), false},
		{strings.Repeat("é", 64), true},
		{"x", true},
		{" padded name ", true},
		{"", false},
		{"   ", false},
		{"\t\n", false},
	}
	for _, c := range cases {
		var errs resource.Errors
		resource.ValidateName(&errs, "spec.name", c.name)
		if c.ok && len(errs) != 0 {
			t.Errorf("ValidateName(%d runes %q) = %v, want ok", len([]rune(c.name)), trim(c.name), errs)
		}
		if !c.ok {
			if len(errs) != 1 || errs[0].Field != "spec.name" {
				t.Errorf("ValidateName(%d runes %q) = %v, want one error on spec.name", len([]rune(c.name)), trim(c.name), errs)
			}
		}
	}
	var errs resource.Errors
	resource.ValidateName(&errs, "name", strings.Repeat("名", 65))
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "64") || !strings.Contains(errs[0].Message, "65") {
		t.Errorf("too-long message = %v, want the limit and the count in characters", errs)
	}
	errs = nil
	resource.ValidateName(&errs, "name", "")
	if len(errs) != 1 || errs[0].Message != "is required" {
		t.Errorf("empty name = %v, want is required", errs)
	}
}

func TestValidateDescription(t *testing.T) {
	cases := []struct {
		d  string
		ok bool
	}{
		{"", true},
		{strings.Repeat("d", 200), true},
		{strings.Repeat("d", 201), false},
		{strings.Repeat("描", 200), true}, // 600 bytes
		{strings.Repeat("描", 201), false},
		{strings.Repeat("ab", 100) + "述", false},
	}
	for _, c := range cases {
		var errs resource.Errors
		resource.ValidateDescription(&errs, "description", c.d)
		if c.ok != (len(errs) == 0) {
			t.Errorf("ValidateDescription(%d runes) = %v, want ok=%v", len([]rune(c.d)), errs, c.ok)
		}
		if !c.ok && (len(errs) != 1 || errs[0].Field != "description" || !strings.Contains(errs[0].Message, "200")) {
			t.Errorf("ValidateDescription(%d runes) = %v", len([]rune(c.d)), errs)
		}
	}
}

func TestValidateID(t *testing.T) {
	good := []string{"", "a", "A-Z_0-9", "web-cert_01", strings.Repeat("x", 64)}
	bad := []string{
		strings.Repeat("x", 65), "a b", "a/b", "a.b", "../etc", "ä", "证书", "abc\n", "\nabc", "a:b", "a%20b", " a", "a\x00",
	}
	for _, id := range good {
		var errs resource.Errors
		resource.ValidateID(&errs, id)
		if len(errs) != 0 {
			t.Errorf("ValidateID(%q) = %v, want ok", id, errs)
		}
	}
	for _, id := range bad {
		var errs resource.Errors
		resource.ValidateID(&errs, id)
		if len(errs) != 1 || errs[0].Field != "id" {
			t.Errorf("ValidateID(%q) = %v, want one error on id", id, errs)
		}
	}
}

func TestErrorsAdd(t *testing.T) {
	var errs resource.Errors
	errs.Add("a", "is required")
	errs.Add("b", "got %d", 3)
	want := resource.Errors{{Field: "a", Message: "is required"}, {Field: "b", Message: "got 3"}}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("errs = %#v", errs)
	}
}

func TestKindsRegistry(t *testing.T) {
	var names []string
	for _, k := range resource.Kinds() {
		names = append(names, k.Name)
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("Kinds not sorted: %v", names)
	}
	for _, k := range []*resource.Kind{resource.Users, resource.Certificates} {
		got, ok := resource.KindByName(k.Name)
		if !ok || got != k {
			t.Errorf("KindByName(%q) = %v, %v", k.Name, got, ok)
		}
	}
	if _, ok := resource.KindByName("nope"); ok {
		t.Error("KindByName(nope) found something")
	}
	if _, ok := resource.Users.New().(*resource.User); !ok {
		t.Error("Users.New is not a *User")
	}
	if _, ok := resource.Certificates.New().(*resource.Certificate); !ok {
		t.Error("Certificates.New is not a *Certificate")
	}
	u := &resource.User{Username: "alice", Role: resource.RoleViewer}
	if resource.Users.Unique["username"](u) != "alice" || resource.Users.Filters["role"](u) != resource.RoleViewer {
		t.Error("users unique/filter functions do not read the fields")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	resource.Register(&resource.Kind{Name: "users", New: func() resource.Object { return new(resource.User) }})
}

func TestUserValidate(t *testing.T) {
	ok := &resource.User{Meta: resource.Meta{ID: "u1"}, Username: "alice.b@example-1_x", Role: resource.RoleViewer, Password: "12345678"}
	if errs := ok.Validate(true); len(errs) != 0 {
		t.Errorf("valid new user: %v", errs)
	}
	upd := &resource.User{Username: "alice", Role: resource.RoleAdmin}
	if errs := upd.Validate(false); len(errs) != 0 {
		t.Errorf("update without password: %v", errs)
	}
	cases := []struct {
		u     resource.User
		isNew bool
		field string
	}{
		{resource.User{Username: "alice", Role: "admin"}, true, "password"},
		{resource.User{Username: "alice", Role: "admin", Password: "1234567"}, false, "password"},
		{resource.User{Username: "alice", Role: "admin", Password: strings.Repeat("p", 73)}, false, "password"},
		{resource.User{Username: "alice", Role: "root", Password: "12345678"}, true, "role"},
		{resource.User{Username: "alice", Password: "12345678"}, true, "role"},
		{resource.User{Username: "al ice", Role: "admin", Password: "12345678"}, true, "username"},
		{resource.User{Username: "", Role: "admin", Password: "12345678"}, true, "username"},
		{resource.User{Username: strings.Repeat("a", 65), Role: "admin", Password: "12345678"}, true, "username"},
		{resource.User{Meta: resource.Meta{ID: "bad id"}, Username: "a", Role: "admin", Password: "12345678"}, true, "id"},
	}
	for i, c := range cases {
		errs := c.u.Validate(c.isNew)
		if len(errs) != 1 || errs[0].Field != c.field {
			t.Errorf("case %d: Validate = %v, want one error on %s", i, errs, c.field)
		}
	}
	if p := (&resource.User{Username: "a", Role: "admin", Password: strings.Repeat("p", 72)}).Validate(true); len(p) != 0 {
		t.Errorf("72-byte password refused: %v", p)
	}
}

func trim(s string) string {
	if r := []rune(s); len(r) > 8 {
		return string(r[:8]) + "…"
	}
	return s
}
