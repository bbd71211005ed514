package auditquery

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Filter selects audit rows. The zero Filter selects every row; each set
// field narrows the selection (all of them must hold).
type Filter struct {
	// Since and Until bound the call's start time: Since <= timestamp < Until.
	// A zero time leaves that side open.
	Since, Until time.Time
	// Subject is the authenticated caller (client_subject), exactly.
	Subject string
	// Role matches a row whose client_role is Role or lists Role among its
	// comma-separated roles.
	Role string
	// Tool is the tool name, a glob: * any run of characters, ? one
	// character, \ quotes the next one. Without wildcards it is an exact
	// match.
	Tool string
	// Backend is the backend name, exactly.
	Backend string
	// Statuses are the accepted response statuses (ok, error, denied,
	// timeout, cancelled); empty accepts any.
	Statuses []string
	// TraceID is the W3C trace id (32 hex digits).
	TraceID string
	// Session is the MCP session id (attributes->>'mcp.session.id').
	Session string
	// RequestID is the call's request id (a UUID).
	RequestID string
	// Error matches rows whose error message contains the text, ignoring
	// case.
	Error string
	// Args is a JSON document the call's arguments must contain (the
	// PostgreSQL jsonb @> operator): {"path":"/etc"} finds every call with
	// that argument.
	Args json.RawMessage
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Validate reports the first field that cannot be used as given.
func (f *Filter) Validate() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return errors.New("auditquery: until must be after since")
	}
	if f.TraceID != "" && !traceIDPattern.MatchString(strings.ToLower(f.TraceID)) {
		return fmt.Errorf("auditquery: trace id %q: want 32 hexadecimal digits", f.TraceID)
	}
	if f.RequestID != "" {
		if _, err := uuid.Parse(f.RequestID); err != nil {
			return fmt.Errorf("auditquery: request id %q: want a UUID", f.RequestID)
		}
	}
	if len(f.Args) > 0 {
		var v any
		if err := json.Unmarshal(f.Args, &v); err != nil {
			return fmt.Errorf("auditquery: args filter is not JSON: %w", err)
		}
		switch v.(type) {
		case map[string]any, []any:
		default:
			return errors.New("auditquery: args filter: want a JSON object or array")
		}
	}
	for _, s := range f.Statuses {
		if s == "" {
			return errors.New("auditquery: empty status")
		}
	}
	return nil
}

// globToLike converts a glob to a LIKE pattern with \ as escape character.
// exact reports that the glob had no wildcard (an equality suffices).
func globToLike(glob string) (pattern string, literal string, exact bool) {
	var p, lit strings.Builder
	exact = true
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '*':
			p.WriteByte('%')
			exact = false
		case '?':
			p.WriteByte('_')
			exact = false
		case '\\':
			if i+1 < len(glob) {
				i++
				c = glob[i]
			}
			fallthrough
		default:
			if c == '%' || c == '_' || c == '\\' {
				p.WriteByte('\\')
			}
			p.WriteByte(c)
			lit.WriteByte(c)
		}
	}
	return p.String(), lit.String(), exact
}

// likeContains returns a pattern for ILIKE that matches s anywhere.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ParseTime reads a time bound as operators write it: a duration back from
// now ("15m", "2h", "7d", "1d12h"), an RFC 3339 time
// ("2026-11-30T08:00:00Z"), or a date ("2026-11-30", midnight UTC).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("auditquery: time %q: want a duration (15m, 2h, 7d) or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// ParseDuration is time.ParseDuration that also accepts days ("7d",
// "1d12h"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("auditquery: duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("auditquery: duration %q", s)
	}
	return days + d, nil
}
