package instrumentation

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// scrubError returns the error text msg of a call without its secrets: every
// value in secrets (what redaction removed from the call's arguments) is
// replaced where it occurs as it is, JSON-escaped, Go-quoted or base64, and then the
// secret patterns apply (see redactor.scrubText).
//
// The work is bounded: when the text times the number of secrets exceeds
// scrubBudget (a hostile call: thousands of secret values and a huge error
// text), the text is withheld rather than scrubbed partly.
func (a *Auditor) scrubError(msg string, secrets []string) string {
	if len(secrets) > 0 {
		// Longest first, so that a secret containing another goes whole.
		slices.SortFunc(secrets, func(x, y string) int {
			if d := len(y) - len(x); d != 0 {
				return d
			}
			return strings.Compare(x, y)
		})
		secrets = slices.Compact(secrets)
		if len(msg)*len(secrets) > scrubBudget {
			return "[error text withheld: " + strconv.Itoa(len(msg)) + " bytes with " +
				strconv.Itoa(len(secrets)) + " secret values, too large to scrub]"
		}
		for _, s := range secrets {
			if s == "" {
				continue
			}
			repl := a.redactor.redactString(s)
			msg = replaceForms(msg, s, repl)
		}
	}
	msg, _ = a.redactor.scrubText(msg, nil)
	return msg
}

// scrubBudget bounds len(error text) × number of secret values scrubbed
// from it (4 forms each), about 30 ms of work.
const scrubBudget = 1 << 25

// replaceForms replaces s in msg, and its JSON-escaped, Go-quoted and (for
// six bytes or more) base64 forms where they differ from s.
func replaceForms(msg, s, repl string) string {
	if strings.Contains(msg, s) {
		msg = strings.ReplaceAll(msg, s, repl)
	}
	if b, err := json.Marshal(s); err == nil {
		if q := string(b[1 : len(b)-1]); q != s && strings.Contains(msg, q) {
			msg = strings.ReplaceAll(msg, q, repl)
		}
	}
	if len(s) >= 6 {
		// As encoding/json writes a []byte.
		if b := base64.StdEncoding.EncodeToString([]byte(s)); strings.Contains(msg, b) {
			msg = strings.ReplaceAll(msg, b, repl)
		}
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		if inner := q[1 : len(q)-1]; strings.Contains(msg, inner) {
			msg = strings.ReplaceAll(msg, inner, repl)
		}
	}
	return msg
}
