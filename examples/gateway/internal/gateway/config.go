package gateway

import (
	"bytes"
	"crypto/sha256"
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
	// Server bounds what a client may hold of the HTTP server: timeouts,
	// header size, connections per client address.
	Server ServerConfig `yaml:"server"`
	// Anonymous bounds what requests without a valid token may put in the
	// audit trail.
	Anonymous AnonymousConfig `yaml:"anonymous"`

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

// ServerConfig holds the HTTP server's timeouts and limits. Zero values take
// the defaults below; a negative duration or count turns that limit off.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, headers and body. Once
	// an authenticated request's body has been read the deadline is lifted,
	// so long tool calls and event streams are not cut.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a keep-alive connection idle for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the size of a request's headers (HTTP 431
	// beyond it).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// UnauthenticatedTimeout bounds how long the gateway reads the body of
	// a request without a valid token (to audit which tool it named)
	// before it answers 401 and closes the connection.
	UnauthenticatedTimeout time.Duration `yaml:"unauthenticated_timeout"`
	// MaxConnsPerClient caps the open connections of one client address
	// (an IPv4 address or an IPv6 /64); further connections are closed at
	// once.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
}

// Defaults of the server limits.
const (
	DefaultReadHeaderTimeout      = 10 * time.Second
	DefaultReadTimeout            = 30 * time.Second
	DefaultIdleTimeout            = 120 * time.Second
	DefaultMaxHeaderBytes         = 64 << 10
	DefaultUnauthenticatedTimeout = 2 * time.Second
	DefaultMaxConnsPerClient      = 128
)

// AnonymousConfig bounds the audit rows of requests refused for want of a
// valid token (subject anonymous): refusals from one client address for one
// reason within Window become one row with a count, rows are rate limited,
// and no field of such a row is longer than a few dozen bytes.
type AnonymousConfig struct {
	// Window is the aggregation window: one row per client address and
	// reason per window.
	Window time.Duration `yaml:"window"`
	// RowsPerSecond and Burst limit the anonymous rows of the whole
	// gateway; refusals beyond them are counted in one overflow row per
	// window and reason.
	RowsPerSecond float64 `yaml:"rows_per_second"`
	Burst         int     `yaml:"burst"`
	// MaxClients bounds the client addresses aggregated at once; refusals
	// from further addresses go to the overflow row.
	MaxClients int `yaml:"max_clients"`
	// MaxInFlight bounds the unauthenticated requests whose bodies are read
	// at once; beyond it a request is refused without reading its body.
	MaxInFlight int `yaml:"max_in_flight"`
}

// Defaults of the anonymous-row policy.
const (
	DefaultAnonymousWindow        = 10 * time.Second
	DefaultAnonymousRowsPerSecond = 5
	DefaultAnonymousBurst         = 50
	DefaultAnonymousMaxClients    = 1024
	DefaultAnonymousMaxInFlight   = 64
)

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
	// [Config.Finish] replaces it by its SHA-256 and clears it: a checked
	// configuration holds no token in the clear.
	Token string `yaml:"token"`
	// TokenEnv names an environment variable holding the token.
	// [Config.Finish] (called by [Load] and [Parse]) reads it and then
	// unsets it, so that no child process inherits it.
	TokenEnv string `yaml:"token_env"`

	// tokenHash is the SHA-256 of the token, set by Finish.
	tokenHash [sha256.Size]byte
	hashed    bool
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
	// Command, Args, Env and Dir start a stdio backend. The command gets
	// PATH, HOME and LANG from the gateway's environment and Env, nothing
	// else (see [ChildEnvironment]).
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// URL is the streamable HTTP endpoint of an http backend; Headers are
	// sent with every request to it (for example its own Authorization),
	// and only to its origin: a redirect to another origin is refused.
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
	if err := cfg.applyEnv(os.LookupEnv, os.Unsetenv); err != nil {
		return nil, err
	}
	if err := cfg.Finish(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyEnv applies the environment overrides.
// Token variables are read and then unset.
func (c *Config) applyEnv(lookup func(string) (string, bool), unset func(string) error) error {
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
	return c.readTokenEnv(lookup, unset)
}

// readTokenEnv reads the token of every client with token_env (and no
// token yet) from the environment, then unsets the variable.
func (c *Config) readTokenEnv(lookup func(string) (string, bool), unset func(string) error) error {
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.TokenEnv == "" || cl.hashed || cl.Token != "" {
			continue
		}
		v, ok := lookup(cl.TokenEnv)
		if !ok || v == "" {
			return fmt.Errorf("clients[%d].token_env: environment variable %s is not set", i, cl.TokenEnv)
		}
		cl.Token = v
		if unset != nil {
			_ = unset(cl.TokenEnv)
		}
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
	c.Server.defaults()
	c.Anonymous.defaults()

	var errs []error
	if err := c.readTokenEnv(os.LookupEnv, os.Unsetenv); err != nil {
		errs = append(errs, err)
	}
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
	if c.Anonymous.Window < 0 || c.Anonymous.RowsPerSecond < 0 || c.Anonymous.Burst < 0 || c.Anonymous.MaxClients < 0 || c.Anonymous.MaxInFlight < 0 {
		bad("anonymous", "window, rows_per_second, burst, max_clients and max_in_flight must not be negative")
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
	tokens := map[[sha256.Size]byte]int{}
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
		case cl.hashed:
		case cl.Token == "" && cl.TokenEnv == "":
			bad(f+".token", "token or token_env is required")
		case cl.Token != "" && len(cl.Token) < MinTokenLength:
			// Never echo the token itself.
			bad(f+".token", "must be at least %d characters", MinTokenLength)
		case strings.ContainsAny(cl.Token, " \t\r\n"):
			bad(f+".token", "must not contain white space")
		}
		if cl.Token != "" && !cl.hashed {
			c.Clients[i].tokenHash = sha256.Sum256([]byte(cl.Token))
			c.Clients[i].hashed = true
			// From here on only the hash is kept.
			c.Clients[i].Token = ""
		}
		if c.Clients[i].hashed {
			if j, dup := tokens[c.Clients[i].tokenHash]; dup {
				bad(f+".token", "same token as clients[%d]", j)
			} else {
				tokens[c.Clients[i].tokenHash] = i
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

// defaults fills in the server limits left out; a negative value turns a
// limit off (zero for the http.Server).
func (s *ServerConfig) defaults() {
	dur := func(d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			*d = 0
		}
	}
	dur(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur(&s.ReadTimeout, DefaultReadTimeout)
	dur(&s.IdleTimeout, DefaultIdleTimeout)
	dur(&s.UnauthenticatedTimeout, DefaultUnauthenticatedTimeout)
	switch {
	case s.MaxHeaderBytes == 0:
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	case s.MaxHeaderBytes < 0:
		s.MaxHeaderBytes = 0 // net/http's own default, 1 MiB
	}
	switch {
	case s.MaxConnsPerClient == 0:
		s.MaxConnsPerClient = DefaultMaxConnsPerClient
	case s.MaxConnsPerClient < 0:
		s.MaxConnsPerClient = 0 // no cap
	}
}

// defaults fills in the anonymous-row policy left out.
func (a *AnonymousConfig) defaults() {
	if a.Window == 0 {
		a.Window = DefaultAnonymousWindow
	}
	if a.RowsPerSecond == 0 {
		a.RowsPerSecond = DefaultAnonymousRowsPerSecond
	}
	if a.Burst == 0 {
		a.Burst = DefaultAnonymousBurst
	}
	if a.MaxClients == 0 {
		a.MaxClients = DefaultAnonymousMaxClients
	}
	if a.MaxInFlight == 0 {
		a.MaxInFlight = DefaultAnonymousMaxInFlight
	}
}
