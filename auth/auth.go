package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// DefaultTokenTTL is how long a login token stays valid unless --token-ttl says otherwise.
const DefaultTokenTTL = 12 * time.Hour

// ErrInvalidToken covers every reason a token is refused; callers answer 401 without
// saying which, so a forger learns nothing.
var ErrInvalidToken = errors.New("invalid or expired token")

// ErrBadCredentials: unknown user or wrong password.
var ErrBadCredentials = errors.New("invalid username or password")

// NewKey returns a fresh 32-byte token signing key.
func NewKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}

// HashPassword returns the bcrypt hash of a password.
func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword compares a password with its bcrypt hash.
func CheckPassword(hash, pw string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// Claims is what a token says.
type Claims struct {
	jwt.RegisteredClaims
	// PasswordVersion is the user's PasswordSetAt in Unix nanoseconds when the token was
	// issued: a password change makes every older token void, to the nanosecond.
	PasswordVersion int64 `json:"pwv"`
}

// Issue signs a token for user id uid, whose password was last set at passwordSetAt,
// valid for ttl from now.
func Issue(key []byte, uid string, passwordSetAt, now time.Time, ttl time.Duration) (token string, expires time.Time, err error) {
	expires = now.Add(ttl).UTC().Truncate(time.Second)
	c := Claims{PasswordVersion: passwordSetAt.UnixNano(), RegisteredClaims: jwt.RegisteredClaims{
		Subject:   uid,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		Issuer:    "linkops",
	}}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	return token, expires, err
}

// Verify checks a token's signature and expiry and returns its claims.
func Verify(key []byte, token string) (*Claims, error) {
	if len(key) == 0 {
		return nil, ErrInvalidToken
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer("linkops"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err != nil || c.Subject == "" || c.IssuedAt == nil {
		return nil, ErrInvalidToken
	}
	return &c, nil
}

// StillValidFor reports whether a token survives the user's current password: tokens
// issued for an earlier password are void.
func StillValidFor(c *Claims, passwordSetAt time.Time) bool {
	return c.PasswordVersion == passwordSetAt.UnixNano()
}
