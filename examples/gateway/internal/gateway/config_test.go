package gateway

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSampleConfigLoads(t *testing.T) {
	t.Setenv(EnvListen, "")
	t.Setenv(EnvDatabaseURL, "")
	t.Setenv(EnvSpoolDir, "")
	cfg, err := Load("../../gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || len(cfg.Clients) != 2 || len(cfg.Backends) != 1 || !cfg.Audit.IsEnabled() {
		t.Errorf("unexpected sample config: %+v", cfg)
	}
	// No fixed spool path: a second gateway on the machine must not
	// collide with the first (GATEWAY_AUDIT_SPOOL_DIR sets one per process).
	if cfg.Audit.SpoolDir != "" {
		t.Errorf("spool: %q, want none in the sample", cfg.Audit.SpoolDir)
	}
	if cfg.Server.MaxConnsPerClient != DefaultMaxConnsPerClient || cfg.Server.ReadTimeout != DefaultReadTimeout ||
		cfg.Anonymous.Window != DefaultAnonymousWindow || cfg.Anonymous.RowsPerSecond != DefaultAnonymousRowsPerSecond {
		t.Errorf("sample limits differ from the defaults: %+v %+v", cfg.Server, cfg.Anonymous)
	}
	if cfg.Audit.ExportInterval != 200*time.Millisecond || cfg.CallTimeout != 30*time.Second {
		t.Errorf("durations: export_interval %s, call_timeout %s", cfg.Audit.ExportInterval, cfg.CallTimeout)
	}
}

const minimal = `
clients:
  - {subject: alice, role: admin, token: abcdefghijklmnop}
roles:
  admin: ["*"]
backends:
  - {name: demo, type: builtin}
`

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv(EnvListen, "0.0.0.0:9999")
	t.Setenv(EnvDatabaseURL, "postgres://db/x")
	t.Setenv(EnvServiceName, "svc")
	t.Setenv(EnvAuditEnabled, "false")
	t.Setenv(EnvCallTimeout, "3s")
	t.Setenv(EnvShutdownTimeout, "4s")
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:9999" || cfg.DatabaseURL != "postgres://db/x" || cfg.ServiceName != "svc" ||
		cfg.Audit.IsEnabled() || cfg.CallTimeout != 3*time.Second || cfg.ShutdownTimeout != 4*time.Second {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

func TestTokenFromEnvironment(t *testing.T) {
	t.Setenv("ALICE_TOKEN", "from-the-environment-123")
	cfg, err := Parse([]byte(strings.Replace(minimal, "token: abcdefghijklmnop", "token_env: ALICE_TOKEN", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients[0].tokenHash != sha256.Sum256([]byte("from-the-environment-123")) {
		t.Errorf("token_env not read")
	}
	// Read, then unset (no child inherits it), and not kept in the clear.
	if v, ok := os.LookupEnv("ALICE_TOKEN"); ok {
		t.Errorf("ALICE_TOKEN still set after Parse: %q", v)
	}
	if s := fmt.Sprintf("%+v", cfg); strings.Contains(s, "from-the-environment-123") {
		t.Errorf("the loaded config holds the token in the clear: %s", s)
	}
	t.Setenv("ALICE_TOKEN", "")
	if _, err := Parse([]byte(strings.Replace(minimal, "token: abcdefghijklmnop", "token_env: ALICE_TOKEN", 1))); err == nil ||
		!strings.Contains(err.Error(), "clients[0].token_env") {
		t.Errorf("unset token_env: got %v", err)
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, env, want string
	}{
		{"unknown field", minimal + "listen_addr: x\n", "", "field listen_addr not found"},
		{"bad listen", minimal + "listen: nonsense\n", "", "listen: want host:port"},
		{"bad duration", minimal + "call_timeout: soon\n", "", "call_timeout"},
		{"undefined role", strings.Replace(minimal, "role: admin", "role: root", 1), "", `clients[0].role: role "root" is not defined`},
		{"short token", strings.Replace(minimal, "abcdefghijklmnop", "short", 1), "", "clients[0].token: must be at least 16"},
		{"no backends", strings.Replace(minimal, "  - {name: demo, type: builtin}\n", "", 1), "", "backends: at least one"},
		{"unknown backend type", strings.Replace(minimal, "type: builtin", "type: grpc", 1), "", `backends[0].type: unknown type "grpc"`},
		{"stdio without command", strings.Replace(minimal, "type: builtin", "type: stdio", 1), "", "backends[0].command: is required"},
		{"http without url", strings.Replace(minimal, "type: builtin", "type: http", 1), "", "backends[0].url: is required"},
		{"reserved backend name", strings.Replace(minimal, "name: demo", "name: gateway", 1), "", "backends[0].name"},
		{"bad pattern", strings.Replace(minimal, `["*"]`, `["[x"]`, 1), "", "roles.admin[0]: bad tool pattern"},
		{"anonymous subject", strings.Replace(minimal, "subject: alice", "subject: anonymous", 1), "", "clients[0].subject"},
		{"bad env bool", minimal, "maybe", "GATEWAY_AUDIT_ENABLED (audit.enabled)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvAuditEnabled, tc.env)
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "abcdefghijklmnop") {
				t.Errorf("error reveals a token: %v", err)
			}
		})
	}
}

func TestTokensHashedByFinish(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients[0].Token != "" || cfg.Clients[0].tokenHash != sha256.Sum256([]byte("abcdefghijklmnop")) {
		t.Errorf("token kept in the clear or not hashed: %+v", cfg.Clients[0])
	}
	// Finish again (code that builds on a loaded Config) keeps the hash.
	if err := cfg.Finish(); err != nil {
		t.Errorf("second Finish: %v", err)
	}
	dup := strings.Replace(minimal, "roles:", "  - {subject: bob, role: admin, token: abcdefghijklmnop}\nroles:", 1)
	if _, err := Parse([]byte(dup)); err == nil || !strings.Contains(err.Error(), "same token as clients[0]") {
		t.Errorf("duplicate token: %v", err)
	}
}

func TestServerLimitDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal + `
server: {read_timeout: -1s, max_conns_per_client: 7}
anonymous: {window: 3s}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.ReadTimeout != 0 || s.MaxConnsPerClient != 7 || s.IdleTimeout != DefaultIdleTimeout ||
		s.MaxHeaderBytes != DefaultMaxHeaderBytes || s.UnauthenticatedTimeout != DefaultUnauthenticatedTimeout ||
		s.ReadHeaderTimeout != DefaultReadHeaderTimeout {
		t.Errorf("server limits: %+v", s)
	}
	a := cfg.Anonymous
	if a.Window != 3*time.Second || a.RowsPerSecond != DefaultAnonymousRowsPerSecond || a.Burst != DefaultAnonymousBurst ||
		a.MaxClients != DefaultAnonymousMaxClients || a.MaxInFlight != DefaultAnonymousMaxInFlight {
		t.Errorf("anonymous policy: %+v", a)
	}
	if _, err := Parse([]byte(minimal + "anonymous: {burst: -1}\n")); err == nil || !strings.Contains(err.Error(), "anonymous") {
		t.Errorf("negative burst: %v", err)
	}
}
