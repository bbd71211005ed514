package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sentinel-gateway/otelaudit/internal/auditquery"
)

// filterFlags are the row filters query, tail, export, stats and serve
// share.
type filterFlags struct {
	since, until                      string
	subject, role, tool, backend      string
	statuses                          []string
	traceID, session, requestID, text string
	args                              string
}

func (ff *filterFlags) register(fs *pflag.FlagSet, defaultSince string) {
	fs.StringVar(&ff.since, "since", defaultSince, "calls that started at or after this: a duration back from now (15m, 2h, 7d) or an RFC 3339 time")
	fs.StringVar(&ff.until, "until", "", "calls that started before this: a duration back from now or an RFC 3339 time")
	fs.StringVar(&ff.subject, "subject", "", "the authenticated caller (client_subject), exactly")
	fs.StringVar(&ff.role, "role", "", "a role of the caller (one of the comma-separated client_role values)")
	fs.StringVar(&ff.tool, "tool", "", "tool name, a glob: * any characters, ? one character")
	fs.StringVar(&ff.backend, "backend", "", "backend name, exactly")
	fs.StringSliceVar(&ff.statuses, "status", nil, "response status: ok, error, denied, timeout, cancelled (repeat or comma-separate for several)")
	fs.StringVar(&ff.traceID, "trace-id", "", "W3C trace id (32 hex digits)")
	fs.StringVar(&ff.session, "session", "", "MCP session id (mcp.session.id)")
	fs.StringVar(&ff.requestID, "request-id", "", "the call's request id (UUID)")
	fs.StringVar(&ff.text, "error", "", "text the error message contains (case-insensitive)")
	fs.StringVar(&ff.args, "args", "", `JSON the arguments contain (jsonb @>), e.g. '{"path":"/etc/passwd"}'`)
}

// filter turns the flags into a validated auditquery.Filter.
func (ff *filterFlags) filter(now time.Time) (auditquery.Filter, error) {
	var f auditquery.Filter
	var err error
	if f.Since, err = auditquery.ParseTime(ff.since, now); err != nil {
		return f, fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = auditquery.ParseTime(ff.until, now); err != nil {
		return f, fmt.Errorf("--until: %w", err)
	}
	f.Subject, f.Role, f.Tool, f.Backend = ff.subject, ff.role, ff.tool, ff.backend
	for _, s := range ff.statuses {
		if s = strings.TrimSpace(s); s != "" {
			f.Statuses = append(f.Statuses, s)
		}
	}
	f.TraceID, f.Session, f.RequestID, f.Error = ff.traceID, ff.session, ff.requestID, ff.text
	if ff.args != "" {
		f.Args = json.RawMessage(ff.args)
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	return f, nil
}

// formatFlag registers --format with the allowed values; def "" means:
// table on a terminal, else the first non-table value.
func formatFlag(cmd *cobra.Command, p *string, allowed []string, help string) {
	cmd.Flags().StringVar(p, "format", "", help+" ("+strings.Join(allowed, ", ")+")")
}

func chooseFormat(cmd *cobra.Command, given string, allowed []string, human, machine string) (string, error) {
	if given == "" {
		if isTerminal(cmd.OutOrStdout()) {
			return human, nil
		}
		return machine, nil
	}
	for _, a := range allowed {
		if given == a {
			return given, nil
		}
	}
	return "", fmt.Errorf("--format %q: want one of %s", given, strings.Join(allowed, ", "))
}
