package api

import (
	"bytes"
	"sync"
	"time"

	"github.com/linkops/linkops/auth"
)

// maxCachedTokens bounds the verified-token cache; when full it is simply emptied.
const maxCachedTokens = 10000

// tokenCache remembers tokens whose signature was already verified, so a busy client does
// not pay for JWT parsing on every request. Expiry, the user's existence and the password
// version are still checked on every request by the caller; the cache only saves the
// signature check, and an entry is only valid for the key that verified it.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]cachedToken
}

type cachedToken struct {
	key    []byte
	claims *auth.Claims
}

func (tc *tokenCache) verify(key []byte, token string) (*auth.Claims, error) {
	tc.mu.Lock()
	e, ok := tc.entries[token]
	tc.mu.Unlock()
	if ok && bytes.Equal(e.key, key) && time.Now().Before(e.claims.ExpiresAt.Time) {
		return e.claims, nil
	}
	claims, err := auth.Verify(key, token)
	if err != nil {
		return nil, err
	}
	tc.mu.Lock()
	if tc.entries == nil || len(tc.entries) >= maxCachedTokens {
		tc.entries = map[string]cachedToken{}
	}
	tc.entries[token] = cachedToken{key: key, claims: claims}
	tc.mu.Unlock()
	return claims, nil
}
