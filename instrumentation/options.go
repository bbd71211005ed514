package instrumentation

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/sentinel-gateway/otelaudit"
)

// DefaultMaxRefused is the default number of refused calls kept in memory in
// fail-closed mode until the audit pipeline is healthy again.
const DefaultMaxRefused = 4096

// Option configures an [Auditor].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

type config struct {
	loggerProvider log.LoggerProvider
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	identity       func(context.Context) (subject, role string)
	redactKeys     []string
	hmacKey        []byte
	maxArgsBytes   int
	maxFieldBytes  int
	maxErrorBytes  int
	noErrorText    bool
	patterns       []SecretPattern
	noPatterns     bool
	health         HealthChecker
	maxRefused     int
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
	}
	if c.loggerProvider == nil {
		c.loggerProvider = otel.GetLoggerProvider()
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.identity == nil {
		c.identity = IdentityFromContext
	}
	if c.maxArgsBytes <= 0 {
		c.maxArgsBytes = otelaudit.DefaultMaxArgsBytes
	}
	if c.maxFieldBytes <= 0 {
		c.maxFieldBytes = otelaudit.DefaultMaxFieldBytes
	}
	if c.maxErrorBytes <= 0 {
		c.maxErrorBytes = otelaudit.DefaultMaxErrorBytes
	}
	if c.maxRefused <= 0 {
		c.maxRefused = DefaultMaxRefused
	}
	return c
}

// WithLoggerProvider sets the LoggerProvider the audit records are emitted
// through. The default is the global LoggerProvider
// (go.opentelemetry.io/otel/log/global).
func WithLoggerProvider(lp log.LoggerProvider) Option {
	return optionFunc(func(c config) config {
		c.loggerProvider = lp
		return c
	})
}

// WithTracerProvider sets the TracerProvider used for the execute_tool spans
// started by [Auditor.Wrap] and the adapters. The default is the global
// TracerProvider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c config) config {
		c.tracerProvider = tp
		return c
	})
}

// WithMeterProvider sets the MeterProvider for the Auditor's own metrics
// (refused calls in fail-closed mode). The default is the global
// MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c config) config {
		c.meterProvider = mp
		return c
	})
}

// WithIdentity sets the hook that returns the caller's subject and role from
// the context of a call, for calls whose subject and role are not given
// otherwise. The default is [IdentityFromContext], which reads what
// [ContextWithIdentity] stored.
func WithIdentity(f func(ctx context.Context) (subject, role string)) Option {
	return optionFunc(func(c config) config {
		c.identity = f
		return c
	})
}

// WithRedactKeys adds keys whose values are redacted, on top of the default
// ones (password, passwd, passphrase, pwd, pass, secret, token, api_key,
// authorization, auth, cookie, credential, creds, private_key, signing_key,
// ssh_key, access_key, session_key, encryption_key, client_key, master_key,
// otp, pin, dsn, connection_string, jwt, bearer). Keys match as the defaults
// do: case is ignored, so are characters other than letters and digits, and
// a key matches when it contains one of the configured keys (X-Api-Key
// contains apikey); a configured key of at most four letters or digits
// (pass, auth, pwd) matches only a whole word of a key (db_pass, authToken,
// X-Auth, but not compass or author).
//
// The same keys are recognised in name/value pairs ({"name": "Authorization",
// "value": "…"}, ["Authorization", "…"]), in key=value text and query
// parameters (?api_key=…), in "Key: value" lines and in JSON held in strings.
func WithRedactKeys(keys ...string) Option {
	return optionFunc(func(c config) config {
		c.redactKeys = append(c.redactKeys[:len(c.redactKeys):len(c.redactKeys)], keys...)
		return c
	})
}

// WithHMACKey switches redaction to HMAC mode: a redacted value becomes
// "hmac-sha256:<hex>", the HMAC-SHA256 under key of the value (the string
// itself for strings, the JSON encoding of any other value). An operator who
// holds the key can check whether a known value was sent without the audit
// log ever holding it. An empty key keeps the default mode, in which a
// redacted value becomes [RedactedValue].
func WithHMACKey(key []byte) Option {
	return optionFunc(func(c config) config {
		c.hmacKey = append([]byte(nil), key...)
		return c
	})
}

// WithMaxArgsBytes sets the largest size, as JSON, of the arguments recorded
// with a call. Larger arguments are replaced by a marker holding their size
// and SHA-256 (see [otelaudit.MarkerTruncatedKey]). Zero or less means
// [otelaudit.DefaultMaxArgsBytes] (64 KiB).
func WithMaxArgsBytes(n int) Option {
	return optionFunc(func(c config) config {
		c.maxArgsBytes = n
		return c
	})
}

// WithMaxFieldBytes sets the largest size in bytes recorded of each of the
// tool name, backend name, subject, role, MCP method, MCP session id,
// JSON-RPC id and error type. A longer value is cut, on a UTF-8 boundary, to
// a prefix ending in otelaudit.TruncatedSuffix, and the record gains the byte
// length and SHA-256 of the original (otelaudit.TruncatedSizeKey,
// otelaudit.TruncatedSHA256Key). NUL bytes and invalid UTF-8 are replaced by
// U+FFFD the same way. Zero or less means otelaudit.DefaultMaxFieldBytes
// (256).
func WithMaxFieldBytes(n int) Option {
	return optionFunc(func(c config) config {
		c.maxFieldBytes = n
		return c
	})
}

// WithMaxErrorBytes sets the largest size in bytes of the recorded error text
// (error.message and the span status), cut like the fields of
// [WithMaxFieldBytes]. Zero or less means otelaudit.DefaultMaxErrorBytes
// (4 KiB).
func WithMaxErrorBytes(n int) Option {
	return optionFunc(func(c config) config {
		c.maxErrorBytes = n
		return c
	})
}

// WithErrorText sets whether the error text of a failed call is recorded
// (error.message, and the description of the span status). It is on by
// default, scrubbed: every secret value redaction removed from the call's
// arguments is replaced in it, the secret patterns apply and the length is
// bounded ([WithMaxErrorBytes]). WithErrorText(false) leaves it out entirely;
// error.type is still recorded.
func WithErrorText(on bool) Option {
	return optionFunc(func(c config) config {
		c.noErrorText = !on
		return c
	})
}

// WithSecretPatterns adds formats of secrets that are redacted in every
// string argument, whatever its key, and in error text, on top of
// [DefaultSecretPatterns]. Give each pattern a Prefix: a pattern without one
// runs its regular expression over every string.
func WithSecretPatterns(p ...SecretPattern) Option {
	return optionFunc(func(c config) config {
		c.patterns = append(c.patterns[:len(c.patterns):len(c.patterns)], p...)
		return c
	})
}

// WithoutDefaultSecretPatterns turns off [DefaultSecretPatterns]; patterns
// given with [WithSecretPatterns] still apply. Redaction by key, name/value
// pairs, key=value text and URL userinfo stay on.
func WithoutDefaultSecretPatterns() Option {
	return optionFunc(func(c config) config {
		c.noPatterns = true
		return c
	})
}

// WithFailClosed switches the Auditor to fail-closed mode: while h reports an
// error, [Auditor.Allow] returns [ErrAuditUnavailable] and [Auditor.Wrap] and
// the adapters refuse calls with it before they reach their backend. Refused
// calls are kept in memory (at most [WithMaxRefused] of them) and recorded
// with status denied once h reports healthy again.
//
// h is called once per call, so it must be cheap (an atomic load).
func WithFailClosed(h HealthChecker) Option {
	return optionFunc(func(c config) config {
		c.health = h
		return c
	})
}

// WithMaxRefused bounds the number of refused calls kept in memory in
// fail-closed mode. Refusals beyond the bound are counted and reported
// through otel.Handle. Zero or less means [DefaultMaxRefused].
func WithMaxRefused(n int) Option {
	return optionFunc(func(c config) config {
		c.maxRefused = n
		return c
	})
}

// secretPatterns returns the patterns the configuration asks for.
func (c config) secretPatterns() []SecretPattern {
	if c.noPatterns {
		return c.patterns
	}
	return append(DefaultSecretPatterns(), c.patterns...)
}
