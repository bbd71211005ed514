package instrumentation

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// scrubError returns the error text msg of a call without its secrets: every
// value in secrets (what redaction removed from the call's arguments) is
// replaced where it occurs as it is, JSON-escaped or Go-quoted, and then the
// secret patterns apply (see redactor.scrubText).
func (a *Auditor) scrubError(msg string, secrets []string) string {
	if len(secrets) > 0 {
		// Longest first, so that a secret containing another goes whole.
		slices.SortFunc(secrets, func(x, y string) int { return len(y) - len(x) })
		for i, s := range secrets {
			if s == "" || i > 0 && s == secrets[i-1] {
				continue
			}
			repl := a.redactor.redactString(s)
			msg = replaceForms(msg, s, repl)
		}
	}
	msg, _ = a.redactor.scrubText(msg, nil)
	return msg
}

// replaceForms replaces s in msg, and its JSON-escaped and Go-quoted forms
// where they differ from s.
func replaceForms(msg, s, repl string) string {
	if strings.Contains(msg, s) {
		msg = strings.ReplaceAll(msg, s, repl)
	}
	if b, err := json.Marshal(s); err == nil {
		if q := string(b[1 : len(b)-1]); q != s && strings.Contains(msg, q) {
			msg = strings.ReplaceAll(msg, q, repl)
		}
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		if inner := q[1 : len(q)-1]; strings.Contains(msg, inner) {
			msg = strings.ReplaceAll(msg, inner, repl)
		}
	}
	return msg
}
