package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.yaml.in/yaml/v3"
)

// Environment variables that override the configuration file. They are
// applied after the file is read and before the configuration is checked.
const (
	EnvListen          = "GATEWAY_LISTEN"           // listen
	EnvDatabaseURL     = "OTELAUDIT_DATABASE_URL"   // database_url
	EnvServiceName     = "OTEL_SERVICE_NAME"        // service_name
	EnvAuditEnabled    = "GATEWAY_AUDIT_ENABLED"    // audit.enabled
	EnvCallTimeout     = "GATEWAY_CALL_TIMEOUT"     // call_timeout
	EnvShutdownTimeout = "GATEWAY_SHUTDOWN_TIMEOUT" // shutdown_timeout
	EnvSpoolDir        = "GATEWAY_AUDIT_SPOOL_DIR"  // audit.spool_dir
)

// Defaults for settings the configuration leaves out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultServiceName     = "otelaudit-gateway"
	DefaultCallTimeout     = 30 * time.Second
	DefaultShutdownTimeout = 15 * time.Second
)

// Backend types.
const (
	BackendBuiltin = "builtin" // the demo tools compiled into the gateway
	BackendStdio   = "stdio"   // a downstream MCP server started as a command
	BackendHTTP    = "http"    // a downstream MCP server over streamable HTTP
)

// Config is the gateway configuration, read from YAML by [Load]. See
// examples/gateway/gateway.yaml for a documented sample.
type Config struct {
	// Listen is the TCP address the gateway serves /mcp and /healthz on.
	Listen string `yaml:"listen"`
	// ServiceName is the service.name resource attribute of the gateway's
	// telemetry and the service_name column of its audit rows.
	ServiceName string `yaml:"service_name"`
	// DatabaseURL is the PostgreSQL URL audit rows are written to. It is
	// not needed when OTEL_EXPORTER_OTLP_ENDPOINT sends telemetry to a
	// Collector instead, or when audit is disabled.
	DatabaseURL string `yaml:"database_url"`
	// CallTimeout bounds every tool call; a call that runs longer is
	// cancelled and audited with status timeout.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// ShutdownTimeout bounds how long in-flight calls may run after
	// SIGTERM/SIGINT before they are cancelled.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Audit configures the audit trail.
	Audit AuditConfig `yaml:"audit"`
	// Clients are the callers the gateway knows, one bearer token each.
	Clients []ClientConfig `yaml:"clients"`
	// Roles maps a role to the tools it may call: exact tool names or
	// path.Match patterns such as "*" or "everything_*".
	Roles map[string][]string `yaml:"roles"`
	// Backends serve the tools; their tools are listed at start-up.
	Backends []BackendConfig `yaml:"backends"`

	// AuditExporter, when set in code, replaces the PostgreSQL exporter
	// behind the audit batch processor. The load generator uses it to tell
	// the cost of the instrumentation from the cost of the export.
	AuditExporter sdklog.Exporter `yaml:"-"`
}

// AuditConfig configures the audit trail.
type AuditConfig struct {
	// Enabled turns auditing on (the default) or off. Off exists to measure
	// what auditing costs; a production gateway keeps it on.
	Enabled *bool `yaml:"enabled"`
	// RedactKeys are argument keys redacted on top of the defaults
	// (password, secret, token, api_key, authorization, ...).
	RedactKeys []string `yaml:"redact_keys"`
	// MaxQueueSize, ExportInterval and MaxBatchSize tune the batch
	// processor in front of the exporter; zero keeps the SDK defaults.
	MaxQueueSize   int           `yaml:"max_queue_size"`
	ExportInterval time.Duration `yaml:"export_interval"`
	MaxBatchSize   int           `yaml:"max_batch_size"`
	// SpoolDir, when set, keeps audit batches on local disk while
	// PostgreSQL cannot be reached and replays them when it is back, so
	// an outage loses nothing (exporter.WithSpool). One directory per
	// gateway process.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool (default 1 GiB).
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// FailClosed refuses tool calls (status denied, error.type
	// audit_unavailable) while the exporter cannot record them durably,
	// instead of letting them through unaudited. It needs the PostgreSQL
	// exporter.
	FailClosed bool `yaml:"fail_closed"`
}

// DefaultSpoolMaxBytes bounds the spool unless spool_max_bytes is set.
const DefaultSpoolMaxBytes = 1 << 30

// IsEnabled reports whether auditing is on.
func (a AuditConfig) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// ClientConfig is one caller: who it is, its role, and its bearer token.
type ClientConfig struct {
	// Subject is the caller's identity, stored as client_subject.
	Subject string `yaml:"subject"`
	// Role selects the caller's allow-list under roles.
	Role string `yaml:"role"`
	// Token is the bearer token. Prefer TokenEnv outside demos.
	Token string `yaml:"token"`
	// TokenEnv names an environment variable holding the token.
	TokenEnv string `yaml:"token_env"`
}

// BackendConfig is one backend.
type BackendConfig struct {
	// Name identifies the backend; it is the backend_name of its rows.
	Name string `yaml:"name"`
	// Type is builtin, stdio or http.
	Type string `yaml:"type"`
	// ToolPrefix is prepended to the backend's tool names as the gateway
	// lists them, to keep the names of different backends apart.
	ToolPrefix string `yaml:"tool_prefix"`
	// Command, Args, Env and Dir start a stdio backend. Env adds to the
	// gateway's own environment.
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// URL is the streamable HTTP endpoint of an http backend; Headers are
	// sent with every request to it (for example its own Authorization).
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// Load reads the configuration file at path, applies the environment
// overrides and checks the result. Errors name the offending field.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML configuration, applies the environment overrides and
// checks the result. Unknown fields are errors.
func Parse(b []byte) (*Config, error) {
	var cfg Config
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse YAML: %w", nameFields(b, err))
	}
	if err := cfg.applyEnv(os.LookupEnv); err != nil {
		return nil, err
	}
	if err := cfg.Finish(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyEnv applies the environment overrides.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	if v, ok := lookup(EnvListen); ok && v != "" {
		c.Listen = v
	}
	if v, ok := lookup(EnvDatabaseURL); ok && v != "" {
		c.DatabaseURL = v
	}
	if v, ok := lookup(EnvSpoolDir); ok && v != "" {
		c.Audit.SpoolDir = v
	}
	if v, ok := lookup(EnvServiceName); ok && v != "" {
		c.ServiceName = v
	}
	if v, ok := lookup(EnvAuditEnabled); ok && v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s (audit.enabled): want true or false, got %q", EnvAuditEnabled, v)
		}
		c.Audit.Enabled = &on
	}
	for _, e := range []struct {
		name string
		dst  *time.Duration
	}{{EnvCallTimeout, &c.CallTimeout}, {EnvShutdownTimeout, &c.ShutdownTimeout}} {
		if v, ok := lookup(e.name); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: want a duration such as 10s, got %q", e.name, v)
			}
			*e.dst = d
		}
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.TokenEnv == "" {
			continue
		}
		v, ok := lookup(cl.TokenEnv)
		if !ok || v == "" {
			return fmt.Errorf("clients[%d].token_env: environment variable %s is not set", i, cl.TokenEnv)
		}
		cl.Token = v
	}
	return nil
}

// Finish fills in defaults and checks the configuration, returning every
// problem found, each naming its field. Code that builds a Config without
// [Load] calls it before [New].
func (c *Config) Finish() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}

	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port, got %q", c.Listen)
	}
	if c.CallTimeout < 0 {
		bad("call_timeout", "must be positive, got %s", c.CallTimeout)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.Audit.MaxQueueSize < 0 || c.Audit.MaxBatchSize < 0 || c.Audit.ExportInterval < 0 {
		bad("audit", "max_queue_size, max_batch_size and export_interval must not be negative")
	}
	if c.Audit.SpoolMaxBytes < 0 {
		bad("audit.spool_max_bytes", "must not be negative")
	}
	if c.Audit.SpoolDir != "" && c.Audit.SpoolMaxBytes == 0 {
		c.Audit.SpoolMaxBytes = DefaultSpoolMaxBytes
	}

	for _, role := range slices.Sorted(maps.Keys(c.Roles)) {
		tools := c.Roles[role]
		if role == "" {
			bad("roles", "a role has an empty name")
		}
		for j, p := range tools {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				bad(fmt.Sprintf("roles.%s[%d]", role, j), "bad tool pattern %q", p)
			}
		}
	}

	if len(c.Clients) == 0 {
		bad("clients", "at least one client is needed")
	}
	subjects := map[string]int{}
	tokens := map[string]int{}
	for i, cl := range c.Clients {
		f := fmt.Sprintf("clients[%d]", i)
		if cl.Subject == "" {
			bad(f+".subject", "is required")
		} else if cl.Subject == AnonymousSubject {
			bad(f+".subject", "%q is reserved for unauthenticated requests", AnonymousSubject)
		} else if j, dup := subjects[cl.Subject]; dup {
			bad(f+".subject", "%q is also clients[%d].subject", cl.Subject, j)
		} else {
			subjects[cl.Subject] = i
		}
		if cl.Role == "" {
			bad(f+".role", "is required")
		} else if _, ok := c.Roles[cl.Role]; !ok {
			bad(f+".role", "role %q is not defined under roles", cl.Role)
		}
		switch {
		case cl.Token == "" && cl.TokenEnv == "":
			bad(f+".token", "token or token_env is required")
		case cl.Token != "" && len(cl.Token) < MinTokenLength:
			// Never echo the token itself.
			bad(f+".token", "must be at least %d characters", MinTokenLength)
		case strings.ContainsAny(cl.Token, " \t\r\n"):
			bad(f+".token", "must not contain white space")
		}
		if cl.Token != "" {
			if j, dup := tokens[cl.Token]; dup {
				bad(f+".token", "same token as clients[%d]", j)
			} else {
				tokens[cl.Token] = i
			}
		}
	}

	if len(c.Backends) == 0 {
		bad("backends", "at least one backend is needed")
	}
	names := map[string]int{}
	for i, b := range c.Backends {
		f := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			bad(f+".name", "is required")
		} else if b.Name == GatewayBackend {
			bad(f+".name", "%q is reserved for calls the gateway answers itself", GatewayBackend)
		} else if j, dup := names[b.Name]; dup {
			bad(f+".name", "%q is also backends[%d].name", b.Name, j)
		} else {
			names[b.Name] = i
		}
		switch b.Type {
		case BackendBuiltin:
		case BackendStdio:
			if b.Command == "" {
				bad(f+".command", "is required for a stdio backend")
			}
		case BackendHTTP:
			u, err := url.Parse(b.URL)
			if b.URL == "" {
				bad(f+".url", "is required for an http backend")
			} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(f+".url", "want an http:// or https:// URL, got %q", b.URL)
			}
		case "":
			bad(f+".type", "is required: builtin, stdio or http")
		default:
			bad(f+".type", "unknown type %q: want builtin, stdio or http", b.Type)
		}
	}
	return errors.Join(errs...)
}

// MinTokenLength is the shortest bearer token the configuration accepts.
const MinTokenLength = 16

// lineRE finds the line number in the messages of a yaml.TypeError.
var lineRE = regexp.MustCompile(`^line (\d+): `)

// nameFields rewrites the messages of a yaml.TypeError ("line 8: cannot
// unmarshal !!str `soon` into time.Duration") to name the field as well
// ("line 8: call_timeout: cannot unmarshal ...").
func nameFields(b []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err
	}
	paths := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				paths[k.Line] = p
				if _, seen := paths[v.Line]; !seen || v.Line != k.Line {
					paths[v.Line] = p
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, seen := paths[c.Line]; !seen {
					paths[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			if p, ok := paths[line]; ok {
				msgs[i] = sm[0] + p + ": " + m[len(sm[0]):]
			}
		}
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
