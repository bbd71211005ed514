package instrumentation

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"regexp"
	"sync"
)

// RedactedValue replaces the value of a secret argument when no HMAC key is
// configured.
const RedactedValue = "[REDACTED]"

// HMACPrefix starts a redacted value in HMAC mode (see [WithHMACKey]).
const HMACPrefix = "hmac-sha256:"

// defaultRedactKeys name secrets. They are stored normalised (see normKey).
// Terms of at most [shortTerm] bytes match whole words of a key only (see
// redactor.secret), so that "pass" redacts "db_pass" but not "compass".
var defaultRedactKeys = []string{
	"password", "passwd", "passphrase", "pwd", "pass", "secret", "token",
	"apikey", "authorization", "auth", "cookie", "credential", "creds",
	"privatekey", "signingkey", "sshkey", "accesskey", "sessionkey",
	"encryptionkey", "clientkey", "masterkey", "otp", "pin", "dsn",
	"connectionstring", "jwt", "bearer",
}

// shortTerm is the longest key term that matches whole words only.
const shortTerm = 4

// A SecretPattern recognises one format of secret in any string value,
// whatever the key it is found under, and in error text. Its match is
// replaced as a secret value is ([RedactedValue] or, in HMAC mode, the
// keyed hash).
type SecretPattern struct {
	// Name names the format (for documentation and tests).
	Name string
	// Prefix is a literal every match starts with, at the start of a word.
	// The Regexp is only tried where Prefix occurs, which keeps redaction
	// fast; a pattern without a Prefix runs its Regexp over every string
	// value and every error text, which is slow.
	Prefix string
	// Regexp matches the secret. With a Prefix it is matched where the
	// Prefix starts (it is anchored there). When it has a capturing group,
	// only the text of the first group is replaced, for example the token
	// after "Bearer ".
	Regexp *regexp.Regexp
}

// DefaultSecretPatterns returns the well-known secret formats redacted by
// default under any key (see [WithSecretPatterns]): bearer tokens, OpenAI and
// Anthropic style "sk-" keys, Stripe keys, GitHub tokens, GitLab tokens,
// Slack tokens, AWS access key ids, Google API keys, npm tokens, JSON Web
// Tokens and PEM private keys.
func DefaultSecretPatterns() []SecretPattern {
	return append([]SecretPattern(nil), defaultPatterns...)
}

var defaultPatterns = func() []SecretPattern {
	bearer := regexp.MustCompile(`^[Bb](?:earer|EARER)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)`)
	ghTok := regexp.MustCompile(`^gh[pousr]_[A-Za-z0-9]{20,}`)
	stripe := regexp.MustCompile(`^[sr]k_(?:live|test)_[A-Za-z0-9]{8,}`)
	xox := regexp.MustCompile(`^xox[abeoprs]-[A-Za-z0-9\-]{8,}`)
	aws := regexp.MustCompile(`^(?:AKIA|ASIA)[A-Z0-9]{16}`)
	return []SecretPattern{
		{Name: "bearer token", Prefix: "Bearer", Regexp: bearer},
		{Name: "bearer token", Prefix: "bearer", Regexp: bearer},
		{Name: "bearer token", Prefix: "BEARER", Regexp: bearer},
		{Name: "sk- API key", Prefix: "sk-", Regexp: regexp.MustCompile(`^sk-[A-Za-z0-9_\-]{8,}`)},
		{Name: "Stripe key", Prefix: "sk_", Regexp: stripe},
		{Name: "Stripe key", Prefix: "rk_", Regexp: stripe},
		{Name: "GitHub token", Prefix: "ghp_", Regexp: ghTok},
		{Name: "GitHub token", Prefix: "gho_", Regexp: ghTok},
		{Name: "GitHub token", Prefix: "ghu_", Regexp: ghTok},
		{Name: "GitHub token", Prefix: "ghs_", Regexp: ghTok},
		{Name: "GitHub token", Prefix: "ghr_", Regexp: ghTok},
		{Name: "GitHub token", Prefix: "github_pat_", Regexp: regexp.MustCompile(`^github_pat_[A-Za-z0-9_]{20,}`)},
		{Name: "GitLab token", Prefix: "glpat-", Regexp: regexp.MustCompile(`^glpat-[A-Za-z0-9_\-]{20,}`)},
		{Name: "Slack token", Prefix: "xox", Regexp: xox},
		{Name: "AWS access key id", Prefix: "AKIA", Regexp: aws},
		{Name: "AWS access key id", Prefix: "ASIA", Regexp: aws},
		{Name: "Google API key", Prefix: "AIza", Regexp: regexp.MustCompile(`^AIza[0-9A-Za-z_\-]{35}`)},
		{Name: "npm token", Prefix: "npm_", Regexp: regexp.MustCompile(`^npm_[A-Za-z0-9]{36}`)},
		{Name: "JSON Web Token", Prefix: "eyJ", Regexp: regexp.MustCompile(`^eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*`)},
		{Name: "PEM private key", Prefix: "-----BEGIN", Regexp: regexp.MustCompile(`^-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)`)},
	}
}()

// term is one normalised key term.
type term struct {
	b    []byte
	word bool // matches whole words only
}

// redactor decides which argument keys are secret and what replaces them,
// and finds secrets in string values and error text.
type redactor struct {
	terms []term
	// hmacs pools hash.Hash values keyed with the HMAC key; nil without
	// HMAC mode.
	hmacs *sync.Pool

	// prefixed holds, per first byte, the patterns with a Prefix.
	prefixed [256][]SecretPattern
	// unprefixed are the patterns without a Prefix (slow path).
	unprefixed []*regexp.Regexp
	// known caches secret's answers for the keys seen (they repeat from
	// call to call); at most maxKnownKeys keys of at most maxKnownKeyLen
	// bytes, so hostile keys cannot grow it. A lookup takes the read lock
	// and does not allocate.
	knownMu sync.RWMutex
	known   map[string]bool

	// trigger marks the bytes at which scrubText looks closer: the first
	// bytes of the prefixes, '=' (key=value, query parameters) and ':'
	// (URLs with userinfo, "Key: value" and JSON "key": "value").
	trigger [256]bool
}

func newRedactor(extra []string, hmacKey []byte, patterns []SecretPattern) *redactor {
	r := &redactor{}
	var buf [128]byte
	for _, k := range append(append([]string(nil), defaultRedactKeys...), extra...) {
		n := normKey(buf[:0], k)
		if len(n) == 0 {
			continue
		}
		r.terms = append(r.terms, term{b: append([]byte(nil), n...), word: len(n) <= shortTerm})
	}
	if len(hmacKey) > 0 {
		key := append([]byte(nil), hmacKey...)
		r.hmacs = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	r.trigger['='], r.trigger[':'] = true, true
	for _, p := range patterns {
		if p.Regexp == nil {
			continue
		}
		if p.Prefix == "" {
			r.unprefixed = append(r.unprefixed, p.Regexp)
			continue
		}
		if s := p.Regexp.String(); len(s) == 0 || s[0] != '^' {
			p.Regexp = regexp.MustCompile(`^(?:` + s + `)`)
		}
		c := p.Prefix[0]
		r.prefixed[c] = append(r.prefixed[c], p)
		r.trigger[c] = true
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

// Bounds of the cache of secret's answers.
const (
	maxKnownKeys   = 4096
	maxKnownKeyLen = 64
)

// secret reports whether values under key k are to be redacted (see
// isSecret), from the cache when k was seen before.
func (r *redactor) secret(k string) bool {
	if len(k) > maxKnownKeyLen {
		return r.isSecret(k)
	}
	r.knownMu.RLock()
	v, ok := r.known[k]
	n := len(r.known)
	r.knownMu.RUnlock()
	if ok {
		return v
	}
	v = r.isSecret(k)
	if n < maxKnownKeys {
		r.knownMu.Lock()
		if r.known == nil {
			r.known = make(map[string]bool)
		}
		if len(r.known) < maxKnownKeys {
			r.known[k] = v
		}
		r.knownMu.Unlock()
	}
	return v
}

// isSecret reports whether values under key k are to be redacted: its
// normalised form contains a term, or, for a short term, one of its words
// (split at non-alphanumerics and at lower-to-upper case changes) is the
// term.
func (r *redactor) isSecret(k string) bool {
	if len(k) == 0 {
		return false
	}
	var buf [64]byte
	n := normKey(buf[:0], k)
	hasWordTerms := false
	for _, t := range r.terms {
		if t.word {
			hasWordTerms = true
			continue
		}
		if bytes.Contains(n, t.b) {
			return true
		}
	}
	if !hasWordTerms || len(n) == 0 {
		return false
	}
	// Words of k, lower-cased.
	var wbuf [64]byte
	for i := 0; i < len(k); {
		for i < len(k) && !isAlnum(k[i]) {
			i++
		}
		w := wbuf[:0]
		start := i
		for j := start; j < len(k) && isAlnum(k[j]); j++ {
			c := k[j]
			if j > start && isUpper(c) && !isUpper(k[j-1]) {
				break // camelCase boundary
			}
			if isUpper(c) {
				c += 'a' - 'A'
			}
			w = append(w, c)
			i = j + 1
		}
		if len(w) == 0 {
			i++
			continue
		}
		for _, t := range r.terms {
			if t.word && bytes.Equal(w, t.b) {
				return true
			}
		}
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// isKeyByte reports whether c may be part of a key in key=value text.
func isKeyByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

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
	switch x := v.(type) {
	case string:
		return r.redactString(x)
	case []byte:
		return r.redactString(string(x))
	}
	b, err := safeMarshal(v)
	if err != nil {
		// A value that cannot be encoded is still never recorded.
		return RedactedValue
	}
	return r.redactString(string(b))
}

// scrubText returns s with every secret it recognises replaced: matches of
// the secret patterns, the password (or token) in the userinfo of a URL, the
// value of key=value pairs and query parameters whose key names a secret,
// the rest of a "Key: value" line and the value of a JSON "key": value pair
// whose key names a secret. It reports whether it changed s, and appends
// what it removed to *found when found is not nil. A string without a
// trigger byte costs one pass over it and no allocation.
func (r *redactor) scrubText(s string, found *[]string) (string, bool) {
	var out []byte
	last := 0
	for i := 0; i < len(s); i++ {
		if !r.trigger[s[i]] {
			continue
		}
		a, b, ok := r.matchAt(s, i)
		if !ok || a < last {
			continue
		}
		if found != nil {
			*found = append(*found, s[a:b])
		}
		if out == nil {
			out = make([]byte, 0, len(s)+len(RedactedValue))
		}
		out = append(out, s[last:a]...)
		out = append(out, r.redactString(s[a:b])...)
		last = b
		if b > i {
			i = b - 1
		}
	}
	changed := out != nil
	if changed {
		out = append(out, s[last:]...)
		s = string(out)
	}
	for _, re := range r.unprefixed {
		if !re.MatchString(s) {
			continue
		}
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			if found != nil {
				*found = append(*found, m)
			}
			return r.redactString(m)
		})
		changed = true
	}
	return s, changed
}

// matchAt looks for a secret at s[i] (a trigger byte) and returns its span.
func (r *redactor) matchAt(s string, i int) (a, b int, ok bool) {
	switch c := s[i]; c {
	case '=':
		return r.keyValueAt(s, i)
	case ':':
		if len(s)-i >= 3 && s[i+1] == '/' && s[i+2] == '/' {
			return userinfoAt(s, i+3)
		}
		return r.colonAt(s, i)
	}
	// Only at the start of a word, '-' counting as part of one: then a
	// failed attempt (a JWT prefix without its dots, say) costs at most one
	// scan of the run it starts, never one per occurrence inside it.
	if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '_' || s[i-1] == '-') {
		return 0, 0, false
	}
	for _, p := range r.prefixed[s[i]] {
		if len(s)-i < len(p.Prefix) || s[i:i+len(p.Prefix)] != p.Prefix {
			continue
		}
		loc := p.Regexp.FindStringSubmatchIndex(s[i:])
		if loc == nil {
			continue
		}
		if len(loc) >= 4 && loc[2] >= 0 {
			return i + loc[2], i + loc[3], loc[3] > loc[2]
		}
		return i + loc[0], i + loc[1], loc[1] > loc[0]
	}
	return 0, 0, false
}

// keyBefore returns the key that ends at s[:end] (after optional closing
// quote and spaces) and whether it was quoted.
func keyBefore(s string, end int) (key string, quoted bool) {
	j := end
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	if j > 0 && (s[j-1] == '"' || s[j-1] == '\'') {
		quoted = true
		j--
	}
	k := j
	for k > 0 && isKeyByte(s[k-1]) {
		k--
	}
	return s[k:j], quoted
}

// valueAfter returns the span of the value that starts at s[i] (after
// spaces): a quoted string up to its closing quote, or a run up to a
// delimiter.
func valueAfter(s string, i int, delims string) (a, b int) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		q := s[i]
		j := i + 1
		for j < len(s) && s[j] != q {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j > len(s) {
			j = len(s)
		}
		return i + 1, j
	}
	j := i
	for j < len(s) && !isDelim(s[j], delims) {
		j++
	}
	return i, j
}

func isDelim(c byte, delims string) bool {
	for k := 0; k < len(delims); k++ {
		if c == delims[k] {
			return true
		}
	}
	return false
}

// keyValueAt handles key=value (query parameters, DSNs, flags).
func (r *redactor) keyValueAt(s string, i int) (a, b int, ok bool) {
	key, _ := keyBefore(s, i)
	if key == "" || !r.secret(key) {
		return 0, 0, false
	}
	a, b = valueAfter(s, i+1, " \t\r\n&;,#\"'<>)]}")
	return a, b, b > a
}

// colonAt handles "Key: value" at the start of a line (header lines) and
// JSON "key": value pairs.
func (r *redactor) colonAt(s string, i int) (a, b int, ok bool) {
	key, quoted := keyBefore(s, i)
	if key == "" || !r.secret(key) {
		return 0, 0, false
	}
	if quoted {
		a, b = valueAfter(s, i+1, ",}] \t\r\n")
		return a, b, b > a
	}
	// A header line: the key must start the line (after spaces). Checked
	// from the key backwards only, so that many colons cost no more than
	// one pass.
	k := i
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	k -= len(key)
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	if k > 0 && s[k-1] != '\n' && s[k-1] != '\r' {
		return 0, 0, false
	}
	a = i + 1
	for a < len(s) && (s[a] == ' ' || s[a] == '\t') {
		a++
	}
	b = a
	for b < len(s) && s[b] != '\n' && s[b] != '\r' {
		b++
	}
	return a, b, b > a
}

// userinfoAt handles the authority of a URL that starts at s[i] (after
// "://"): in user:password@host the password is the secret, in token@host
// the whole userinfo.
func userinfoAt(s string, i int) (a, b int, ok bool) {
	end := i
	for end < len(s) && !isDelim(s[end], "/?#\"'<> \t\r\n") {
		end++
	}
	at := -1
	for k := end - 1; k >= i; k-- {
		if s[k] == '@' {
			at = k
			break
		}
	}
	if at <= i {
		return 0, 0, false
	}
	for k := i; k < at; k++ {
		if s[k] == ':' {
			return k + 1, at, at > k+1
		}
	}
	return i, at, true
}
