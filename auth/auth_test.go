package auth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/linkops/linkops/auth"
)

func issue(t *testing.T, key []byte, uid string, now time.Time, ttl time.Duration) string {
	t.Helper()
	tok, _, err := auth.Issue(key, uid, time.Time{}, now, ttl)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

func mustRefuse(t *testing.T, key []byte, tok, why string) {
	t.Helper()
	c, err := auth.Verify(key, tok)
	if !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("%s: Verify = %+v, %v; want ErrInvalidToken", why, c, err)
	}
	if c != nil {
		t.Errorf("%s: Verify returned claims %+v with the error", why, c)
	}
}

// signRaw signs arbitrary claims with HS256 and key, as a forger holding the key (or a bug
// in Issue) could.
func signRaw(t *testing.T, key []byte, m jwt.SigningMethod, claims jwt.Claims) string {
	t.Helper()
	var signKey any = key
	if m == jwt.SigningMethodNone {
		signKey = jwt.UnsafeAllowNoneSignatureType
	}
	tok, err := jwt.NewWithClaims(m, claims).SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func segment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestNewKey(t *testing.T) {
	a, b := auth.NewKey(), auth.NewKey()
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("key lengths %d, %d; want 32", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Error("two keys are equal")
	}
	if bytes.Equal(a, make([]byte, 32)) {
		t.Error("key is all zeros")
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	key := auth.NewKey()
	now := time.Now()
	tok, expires, err := auth.Issue(key, "user-1", time.Time{}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q is not a JWS compact serialization", tok)
	}
	wantExp := now.Add(time.Hour).UTC().Truncate(time.Second)
	if !expires.Equal(wantExp) || expires.Location() != time.UTC {
		t.Errorf("expires = %v, want %v in UTC", expires, wantExp)
	}
	c, err := auth.Verify(key, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != "user-1" {
		t.Errorf("subject = %q", c.Subject)
	}
	if c.Issuer != "linkops" {
		t.Errorf("issuer = %q", c.Issuer)
	}
	if c.ExpiresAt == nil || !c.ExpiresAt.Time.Equal(expires) {
		t.Errorf("exp = %v, want %v", c.ExpiresAt, expires)
	}
	if c.IssuedAt == nil || c.IssuedAt.Time.After(now) || now.Sub(c.IssuedAt.Time) >= time.Second {
		t.Errorf("iat = %v, want %v to the second", c.IssuedAt, now)
	}
	// A token is bound to its key, not to the key's slice.
	if _, err := auth.Verify(append([]byte{}, key...), tok); err != nil {
		t.Errorf("Verify with a copy of the key: %v", err)
	}
	// Each subject gets its own token.
	if other := issue(t, key, "user-2", now, time.Hour); other == tok {
		t.Error("tokens of two users are equal")
	}
	// The default lifetime issues valid tokens.
	if _, err := auth.Verify(key, issue(t, key, "u", now, auth.DefaultTokenTTL)); err != nil {
		t.Errorf("DefaultTokenTTL token: %v", err)
	}
}

func TestExpiredTokenRefused(t *testing.T) {
	key := auth.NewKey()
	mustRefuse(t, key, issue(t, key, "u1", time.Now().Add(-2*time.Hour), time.Hour), "expired an hour ago")
	mustRefuse(t, key, issue(t, key, "u1", time.Now().Add(-10*time.Second), 5*time.Second), "expired seconds ago")
	mustRefuse(t, key, issue(t, key, "u1", time.Now(), -time.Minute), "negative ttl")
	// Issued in the past but still inside its lifetime: accepted.
	if _, err := auth.Verify(key, issue(t, key, "u1", time.Now().Add(-2*time.Hour), 3*time.Hour)); err != nil {
		t.Errorf("token still inside its lifetime: %v", err)
	}
}

func TestTokenFromAnotherKeyRefused(t *testing.T) {
	key, other := auth.NewKey(), auth.NewKey()
	tok := issue(t, other, "u1", time.Now(), time.Hour)
	mustRefuse(t, key, tok, "signed with another key")
	mustRefuse(t, nil, tok, "nil verification key")
	mustRefuse(t, []byte{}, tok, "empty verification key")
}

func TestForgedTokensRefused(t *testing.T) {
	key := auth.NewKey()
	now := time.Now()
	good := issue(t, key, "u1", now, time.Hour)
	parts := strings.Split(good, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", good)
	}
	valid := func() jwt.RegisteredClaims {
		return jwt.RegisteredClaims{
			Subject: "u1", Issuer: "linkops",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
	}
	// The helper's valid claims are accepted, so the refusals below are about one change.
	if _, err := auth.Verify(key, signRaw(t, key, jwt.SigningMethodHS256, valid())); err != nil {
		t.Fatalf("hand-signed valid token refused: %v", err)
	}

	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "admin"
	tampered := parts[0] + "." + segment(claims) + "." + parts[2]

	claims["sub"] = "u1"
	claims["exp"] = now.Add(100 * 24 * time.Hour).Unix()
	extended := parts[0] + "." + segment(claims) + "." + parts[2]

	noneHeader := segment(map[string]string{"alg": "none", "typ": "JWT"})
	noneHeaderUpper := segment(map[string]string{"alg": "NONE", "typ": "JWT"})

	noSub, noIat, noExp, badIss, future := valid(), valid(), valid(), valid(), valid()
	noSub.Subject = ""
	noIat.IssuedAt = nil
	noExp.ExpiresAt = nil
	badIss.Issuer = "someone-else"
	future.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour))
	future.ExpiresAt = jwt.NewNumericDate(now.Add(2 * time.Hour))

	flipped := []byte(parts[2])
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}

	for why, tok := range map[string]string{
		"tampered subject":          tampered,
		"extended expiry":           extended,
		"alg none, no signature":    noneHeader + "." + parts[1] + ".",
		"alg NONE, no signature":    noneHeaderUpper + "." + parts[1] + ".",
		"alg none, old signature":   noneHeader + "." + parts[1] + "." + parts[2],
		"alg none via the library":  signRaw(t, key, jwt.SigningMethodNone, valid()),
		"HS512 with the right key":  signRaw(t, key, jwt.SigningMethodHS512, valid()),
		"HS384 with the right key":  signRaw(t, key, jwt.SigningMethodHS384, valid()),
		"signature flipped":         parts[0] + "." + parts[1] + "." + string(flipped),
		"signature stripped":        parts[0] + "." + parts[1] + ".",
		"no subject":                signRaw(t, key, jwt.SigningMethodHS256, noSub),
		"no issued-at":              signRaw(t, key, jwt.SigningMethodHS256, noIat),
		"no expiry":                 signRaw(t, key, jwt.SigningMethodHS256, noExp),
		"other issuer":              signRaw(t, key, jwt.SigningMethodHS256, badIss),
		"issued in the future":      signRaw(t, key, jwt.SigningMethodHS256, future),
		"empty":                     "",
		"garbage":                   "not.a.token",
		"two segments":              parts[0] + "." + parts[1],
		"trailing segment":          good + ".x",
		"whitespace around a token": " " + good + " ",
	} {
		mustRefuse(t, key, tok, why)
	}
	// The untouched token still verifies: the refusals above are not a broken key.
	if _, err := auth.Verify(key, good); err != nil {
		t.Errorf("original token: %v", err)
	}
}

func TestStillValidFor(t *testing.T) {
	key := auth.NewKey()
	setAt := time.Now().Add(-time.Minute)
	tok, _, err := auth.Issue(key, "u1", setAt, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.Verify(key, tok)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		passwordSetAt time.Time
		want          bool
	}{
		{"unchanged password", setAt, true},
		{"changed a nanosecond later", setAt.Add(time.Nanosecond), false},
		{"changed within the same second", setAt.Add(300 * time.Millisecond), false},
		{"changed a day later", setAt.Add(24 * time.Hour), false},
		{"earlier password", setAt.Add(-time.Hour), false},
		{"never set", time.Time{}, false},
	}
	for _, tc := range cases {
		if got := auth.StillValidFor(c, tc.passwordSetAt); got != tc.want {
			t.Errorf("%s: StillValidFor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	// bcrypt is deliberately slow (more so under -race): each hash or check here costs
	// one bcrypt run, so the test keeps their number small.
	const pw = "correct horse 密码 🔑"
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if h == pw || strings.Contains(h, "horse") {
		t.Fatalf("hash %q contains the password", h)
	}
	if !strings.HasPrefix(h, "$2a$10$") || len(h) != 60 {
		t.Errorf("hash %q is not a cost-10 bcrypt hash", h)
	}
	if !auth.CheckPassword(h, pw) {
		t.Error("CheckPassword refuses the right password")
	}
	if wrong := strings.TrimSuffix(pw, "🔑"); auth.CheckPassword(h, wrong) {
		t.Errorf("CheckPassword accepts %q", wrong)
	}
	for _, bad := range []string{"not-a-hash", "", "$2a$10$short"} {
		if auth.CheckPassword(bad, pw) {
			t.Errorf("CheckPassword accepts the malformed hash %q", bad)
		}
	}
	h2, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h {
		t.Error("two hashes of the same password are equal: no salt")
	}

	// bcrypt only reads 72 bytes; longer passwords are refused rather than truncated.
	if _, err := auth.HashPassword(strings.Repeat("p", 73)); err == nil {
		t.Error("HashPassword accepted a 73-byte password")
	}
}
