package official

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckMQTT(t *testing.T) {
	const id, key = "sid-1", "s3cret"
	now := time.UnixMilli(1700000000000)
	signedAt := func(at time.Time) (string, string) { return SignMQTT(id, key, at) }

	user, pass := signedAt(now)
	// The reference's md5Hex over "secureId|timestamp|secureKey":
	// md5("sid-1|1700000000000|s3cret").
	if user != "sid-1|1700000000000" || pass != "a776dedf7e33792ad4d94e1acbf8b3d7" {
		t.Fatalf("SignMQTT = %q, %q", user, pass)
	}
	if err := CheckMQTT(id, key, user, pass, now); err != nil {
		t.Fatalf("signed now: %v", err)
	}
	if err := CheckMQTT(id, key, user, strings.ToUpper(pass), now); err != nil {
		t.Fatalf("upper-case md5: %v", err)
	}
	for _, skew := range []time.Duration{-MaxClockSkew, MaxClockSkew, time.Minute} {
		if err := CheckMQTT(id, key, user, pass, now.Add(skew)); err != nil {
			t.Errorf("skew %s: %v", skew, err)
		}
	}
	old, oldPass := signedAt(now.Add(-6 * time.Minute))
	if err := CheckMQTT(id, key, old, oldPass, now); !errors.Is(err, ErrStaleTimestamp) || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("6 minutes old: %v, want ErrStaleTimestamp alone", err)
	}
	future, futurePass := signedAt(now.Add(6 * time.Minute))
	if err := CheckMQTT(id, key, future, futurePass, now); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("6 minutes ahead: %v, want ErrStaleTimestamp", err)
	}

	otherU, otherP := SignMQTT(id, "other", now)
	idU, idP := SignMQTT("sid-2", key, now)
	bad := map[string][2]string{
		"wrong password":        {user, strings.Repeat("0", 32)},
		"signed by another key": {otherU, otherP},
		"another secureId":      {idU, idP},
		"not a timestamp":       {"sid-1|soon", pass},
		"empty":                 {"", ""},
		"plain wrong key":       {id, "nope"},
		"plain key as md5":      {id + "|" + strconv.FormatInt(now.UnixMilli(), 10), key},
	}
	for name, up := range bad {
		if err := CheckMQTT(id, key, up[0], up[1], now); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", name, err)
		}
	}
	// A stale timestamp with a wrong signature is bad credentials, not stale: only a
	// correct signature says anything about the device's clock.
	if err := CheckMQTT(id, key, old, "x", now); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("stale and wrong: %v, want ErrBadCredentials", err)
	}

	if err := CheckMQTT(id, key, id, key, now); err != nil {
		t.Fatalf("plain mode: %v", err)
	}
	// A secureId holding "|" still logs in plain.
	if err := CheckMQTT("a|1", key, "a|1", key, now); err != nil {
		t.Fatalf("plain mode with '|' in the secureId: %v", err)
	}
	// A device without credentials admits nobody, not even empty ones.
	if err := CheckMQTT("", "", "", "", now); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unconfigured device: %v", err)
	}
}
