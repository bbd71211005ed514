package pgauditexporter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter/internal/metadata"
)

func loadConfig(t *testing.T, id component.ID) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(id.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshal %s: %v", id, err)
	}
	return cfg
}

func TestConfigStruct(t *testing.T) {
	if err := componenttest.CheckConfigStruct(NewFactory().CreateDefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if got := NewFactory().Type(); got != metadata.Type {
		t.Fatalf("type %s, want %s", got, metadata.Type)
	}
}

func TestLoadConfig(t *testing.T) {
	cfg := loadConfig(t, component.MustNewIDWithName("pgaudit", "settings"))
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	storage := component.MustNewIDWithName("file_storage", "pgaudit")
	if cfg.Host != "db.internal" || cfg.Port != 6432 || cfg.User != "otelaudit" || cfg.Password != "s3cr'et" ||
		cfg.Database != "audit" || cfg.SSLMode != "verify-full" || cfg.Table != "tool_calls" || cfg.Migrate ||
		cfg.MaxConns != 8 || cfg.MaxArgsBytes != 4096 || cfg.TimeoutConfig.Timeout != 10*time.Second {
		t.Fatalf("settings not loaded: %+v", cfg)
	}
	if !cfg.BackOffConfig.Enabled || cfg.BackOffConfig.MaxElapsedTime != 0 || cfg.BackOffConfig.MaxInterval != 30*time.Second {
		t.Fatalf("retry_on_failure not loaded: %+v", cfg.BackOffConfig)
	}
	q := cfg.QueueConfig.Get()
	if q == nil || q.StorageID == nil || *q.StorageID != storage || q.NumConsumers != 2 || q.QueueSize != 100000 {
		t.Fatalf("sending_queue not loaded: %+v", q)
	}
	if b := q.Batch.Get(); b == nil || b.MinSize != 1000 || b.MaxSize != 5000 || b.FlushTimeout != 100*time.Millisecond {
		t.Fatalf("sending_queue.batch not loaded: %+v", q.Batch)
	}

	pc, err := cfg.poolConfig()
	if err != nil {
		t.Fatal(err)
	}
	cc := pc.ConnConfig
	if cc.Host != "db.internal" || cc.Port != 6432 || cc.User != "otelaudit" || cc.Password != "s3cr'et" || cc.Database != "audit" || pc.MaxConns != 8 {
		t.Fatalf("connection settings: host=%s port=%d user=%s db=%s maxconns=%d", cc.Host, cc.Port, cc.User, cc.Database, pc.MaxConns)
	}
	if cc.TLSConfig == nil {
		t.Fatal("sslmode verify-full: want a TLS configuration")
	}

	def := loadConfig(t, component.MustNewID("pgaudit"))
	want := &Config{
		TimeoutConfig: exporterhelper.NewDefaultTimeoutConfig(),
		BackOffConfig: configretry.NewDefaultBackOffConfig(),
		QueueConfig:   configoptional.Some(exporterhelper.NewDefaultQueueConfig()),
		DatabaseURL:   "postgres://otelaudit@db.internal:5432/audit?sslmode=disable",
		Table:         "audit_log",
		Migrate:       true,
	}
	if err := confmap.Validate(def); err != nil {
		t.Fatal(err)
	}
	if def.DatabaseURL != want.DatabaseURL || def.Table != want.Table || !def.Migrate ||
		def.TimeoutConfig != want.TimeoutConfig || def.BackOffConfig != want.BackOffConfig || !def.QueueConfig.HasValue() {
		t.Fatalf("defaults: got %+v", def)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // "" means valid
	}{
		{name: "", wantErr: ""},
		{name: "settings", wantErr: ""},
		{name: "both", wantErr: "not both"},
		{name: "none", wantErr: "database_url or host is required"},
		{name: "bad_table", wantErr: "table:"},
		{name: "bad_port", wantErr: "port 70000"},
		{name: "bad_sslmode", wantErr: `sslmode "sometimes"`},
		{name: "bad_url", wantErr: "database_url:"},
		{name: "negative", wantErr: "max_conns -1"},
		{name: "bad_queue", wantErr: "num_consumers"},
		{name: "bad_timeout", wantErr: "timeout"},
	}
	for _, tt := range tests {
		t.Run("pgaudit/"+tt.name, func(t *testing.T) {
			id := component.MustNewID("pgaudit")
			if tt.name != "" {
				id = component.MustNewIDWithName("pgaudit", tt.name)
			}
			err := confmap.Validate(loadConfig(t, id))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("want an error containing %q, got nil", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("want an error containing %q, got %v", tt.wantErr, err)
			}
		})
	}

	// The negative case reports every problem at once.
	err := confmap.Validate(loadConfig(t, component.MustNewIDWithName("pgaudit", "negative")))
	if err == nil || !strings.Contains(err.Error(), "max_args_bytes -5") {
		t.Fatalf("want max_args_bytes reported too, got %v", err)
	}
	// The password never appears in an error.
	cfg := loadConfig(t, component.MustNewIDWithName("pgaudit", "settings"))
	cfg.DatabaseURL = "postgres://u:hunter2@db:notaport/x"
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database, cfg.SSLMode = "", 0, "", "", "", ""
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want a parse error without the password, got %v", err)
	}
}
