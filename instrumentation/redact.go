package instrumentation

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// RedactedValue replaces the value of a secret argument when no HMAC key is
// configured.
const RedactedValue = "[REDACTED]"

// HMACPrefix starts a redacted value in HMAC mode (see [WithHMACKey]).
const HMACPrefix = "hmac-sha256:"

// defaultRedactKeys name secrets. They are stored normalised (see normKey).
var defaultRedactKeys = []string{
	"password", "passwd", "secret", "token", "apikey", "authorization",
	"cookie", "credential", "privatekey",
}

// redactor decides which argument keys are secret and what replaces them.
type redactor struct {
	terms [][]byte
	// hmacs pools hash.Hash values keyed with the HMAC key; nil without
	// HMAC mode.
	hmacs *sync.Pool
}

func newRedactor(extra []string, hmacKey []byte) *redactor {
	r := &redactor{}
	var buf [128]byte
	for _, k := range append(append([]string(nil), defaultRedactKeys...), extra...) {
		n := normKey(buf[:0], k)
		if len(n) == 0 {
			continue
		}
		r.terms = append(r.terms, append([]byte(nil), n...))
	}
	if len(hmacKey) > 0 {
		key := append([]byte(nil), hmacKey...)
		r.hmacs = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	return r
}

// normKey appends to dst the key lower-cased with every character other than
// an ASCII letter or digit removed (non-ASCII bytes are kept).
func normKey(dst []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c >= 0x80:
			dst = append(dst, c)
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+('a'-'A'))
		}
	}
	return dst
}

// secret reports whether values under key k are to be redacted.
func (r *redactor) secret(k string) bool {
	var buf [64]byte
	n := normKey(buf[:0], k)
	for _, t := range r.terms {
		if bytes.Contains(n, t) {
			return true
		}
	}
	return false
}

// redactString returns what replaces the secret s.
func (r *redactor) redactString(s string) string {
	if r.hmacs == nil {
		return RedactedValue
	}
	h := r.hmacs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	r.hmacs.Put(h)
	var dst [len(HMACPrefix) + 2*sha256.Size]byte
	copy(dst[:], HMACPrefix)
	hex.Encode(dst[len(HMACPrefix):], out)
	return string(dst[:])
}

// redactAny returns what replaces the secret v: strings are hashed as they
// are, any other value as its JSON encoding.
func (r *redactor) redactAny(v any) string {
	if r.hmacs == nil {
		return RedactedValue
	}
	if s, ok := v.(string); ok {
		return r.redactString(s)
	}
	b, err := safeMarshal(v)
	if err != nil {
		// A value that cannot be encoded is still never recorded.
		return RedactedValue
	}
	return r.redactString(string(b))
}
