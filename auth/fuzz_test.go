package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/linkops/linkops/auth"
)

// FuzzVerifyToken hands arbitrary bearer tokens to Verify. Without the key the fuzzer
// cannot sign, so every token it makes must be refused: a token accepted would mean a
// forgery (alg "none", another algorithm, a changed payload) gets in. The seeds include
// tokens signed with other keys and algorithms, and a real one with a changed payload.
func FuzzVerifyToken(f *testing.F) {
	key := auth.NewKey()
	other := auth.NewKey()
	now := time.Now()
	real, _, err := auth.Issue(key, "u1", now, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	forged, _, _ := auth.Issue(other, "u1", now, now, time.Hour)
	claims := jwt.MapClaims{"sub": "u1", "iss": "linkops", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString(key)
	parts := strings.Split(real, ".")
	for _, tok := range []string{forged, none, hs512, parts[0] + "." + parts[1] + ".", parts[0] + ".e30." + parts[2], "", "a.b.c", real + "x"} {
		f.Add(tok)
	}
	if _, err := auth.Verify(key, real); err != nil {
		f.Fatalf("the real token is refused: %v", err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if token == real {
			return
		}
		if c, err := auth.Verify(key, token); err == nil {
			t.Fatalf("a token the fuzzer made was accepted: %q → %+v", token, c)
		}
	})
}

// FuzzVerifyInternal hands arbitrary internal-call headers to VerifyInternal: only the
// signature made with the key, for that method and path, within the allowed clock skew,
// is accepted.
func FuzzVerifyInternal(f *testing.F) {
	key := auth.NewKey()
	now := time.Unix(1_800_000_000, 0)
	good := auth.SignInternal(key, "GET", "/internal/v1/logs/access", now)
	f.Add(good, "GET", "/internal/v1/logs/access")
	f.Add(good, "POST", "/internal/v1/logs/access")
	f.Add(good, "GET", "/internal/v1/logs/system")
	f.Add(auth.SignInternal(auth.NewKey(), "GET", "/x", now), "GET", "/x")
	f.Add(auth.SignInternal(key, "GET", "/x", now.Add(-time.Hour)), "GET", "/x")
	f.Add("1800000000000000000.", "GET", "/x")
	f.Add(".", "", "")
	f.Fuzz(func(t *testing.T, header, method, path string) {
		err := auth.VerifyInternal(key, header, method, path, now)
		if err == nil && !(header == good && method == "GET" && path == "/internal/v1/logs/access") {
			t.Fatalf("accepted %q for %s %s", header, method, path)
		}
		if err != nil && header == good && method == "GET" && path == "/internal/v1/logs/access" {
			t.Fatalf("refused the good signature: %v", err)
		}
	})
}
