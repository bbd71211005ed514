package pgauditexporter // import "github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// Config is the configuration of the pgaudit exporter.
//
// The database is named either by DatabaseURL (a postgres:// URL or a libpq
// keyword/value string) or by the libpq-style settings Host, Port, User,
// Password, Database and SSLMode; not both.
type Config struct {
	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	BackOffConfig configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`

	// DatabaseURL is the PostgreSQL connection string: a postgres:// URL or
	// a libpq keyword/value string ("host=... dbname=...").
	DatabaseURL configopaque.String `mapstructure:"database_url"`

	// Host is the PostgreSQL host name, address or Unix socket directory.
	Host string `mapstructure:"host"`
	// Port is the PostgreSQL port; zero means 5432.
	Port int `mapstructure:"port"`
	// User is the role to connect as.
	User string `mapstructure:"user"`
	// Password is the role's password.
	Password configopaque.String `mapstructure:"password"`
	// Database is the database name; empty means the user name.
	Database string `mapstructure:"database"`
	// SSLMode is the libpq sslmode: disable, allow, prefer, require,
	// verify-ca or verify-full. Empty means prefer.
	SSLMode string `mapstructure:"sslmode"`

	// Table is the audit table (default audit_log). Rows PostgreSQL refuses
	// go to <table>_rejects.
	Table string `mapstructure:"table"`
	// Migrate applies the embedded schema migrations on start (default
	// true). When PostgreSQL is unreachable on start, the migration runs
	// before the first write instead.
	Migrate bool `mapstructure:"migrate"`
	// MaxConns bounds the connection pool; zero means pgx's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int32 `mapstructure:"max_conns"`
	// MaxArgsBytes bounds the request_args JSON stored per row; a larger
	// document is replaced by a marker with its size and SHA-256. Zero
	// means 1 MiB.
	MaxArgsBytes int `mapstructure:"max_args_bytes"`
	// Retention drops, at start and every hour, the audit table's
	// partitions whose whole range is older than this (and the default
	// partition's rows older than it). Zero, the default, keeps everything.
	// As otelaudit_writer only data older than the database's
	// min_retention (7 days unless the owner changes it) can go.
	Retention time.Duration `mapstructure:"retention"`
	// PartitionsAhead is how far ahead of now the audit table's partitions
	// are created, at start and every hour (default 72h; 0 turns it off).
	PartitionsAhead time.Duration `mapstructure:"partitions_ahead"`

	// SigningKeyFile is an Ed25519 private key (PEM PKCS #8, as `openssl
	// genpkey -algorithm ed25519` writes it, or base64 of the 32-byte seed)
	// that signs checkpoints of the component's seal stream every
	// CheckpointInterval and at shutdown (see the README's "Tamper
	// evidence"). Empty: batches are still sealed, checkpoints unsigned.
	SigningKeyFile string `mapstructure:"signing_key_file"`
	// AnchorFile is a JSON Lines file outside the database's reach where
	// every checkpoint is appended, for `otelaudit verify --anchor`.
	AnchorFile string `mapstructure:"anchor_file"`
	// CheckpointInterval is how often the stream's head is checkpointed
	// when SigningKeyFile or AnchorFile is set; zero means one minute.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// hasSettings reports whether any libpq-style connection setting is set.
func (cfg *Config) hasSettings() bool {
	return cfg.Host != "" || cfg.Port != 0 || cfg.User != "" || cfg.Password != "" || cfg.Database != "" || cfg.SSLMode != ""
}

// Validate checks the configuration. The sending_queue, retry_on_failure and
// timeout sections are validated by their own Validate methods.
func (cfg *Config) Validate() error {
	var errs []error
	switch {
	case cfg.DatabaseURL != "" && cfg.hasSettings():
		errs = append(errs, errors.New("set either database_url or the connection settings (host, port, user, password, database, sslmode), not both"))
	case cfg.DatabaseURL == "" && cfg.Host == "":
		errs = append(errs, errors.New("database_url or host is required"))
	case cfg.DatabaseURL != "":
		if _, err := pgxpool.ParseConfig(string(cfg.DatabaseURL)); err != nil {
			// pgx redacts the password in its parse errors.
			errs = append(errs, fmt.Errorf("database_url: %w", err))
		}
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: must be between 1 and 65535", cfg.Port))
	}
	if cfg.SSLMode != "" && !contains(sslModes, cfg.SSLMode) {
		errs = append(errs, fmt.Errorf("sslmode %q: must be one of %s", cfg.SSLMode, strings.Join(sslModes, ", ")))
	}
	if err := migrations.ValidateTable(cfg.Table); err != nil {
		errs = append(errs, fmt.Errorf("table: %w", err))
	}
	if cfg.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("max_conns %d: must not be negative", cfg.MaxConns))
	}
	if cfg.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention %v: must not be negative", cfg.Retention))
	}
	if cfg.PartitionsAhead < 0 {
		errs = append(errs, fmt.Errorf("partitions_ahead %v: must not be negative", cfg.PartitionsAhead))
	}
	if cfg.MaxArgsBytes < 0 {
		errs = append(errs, fmt.Errorf("max_args_bytes %d: must not be negative", cfg.MaxArgsBytes))
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// connString returns the libpq connection string of the configuration.
func (cfg *Config) connString() string {
	if cfg.DatabaseURL != "" {
		return string(cfg.DatabaseURL)
	}
	var b strings.Builder
	kv := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteString("='")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		b.WriteByte('\'')
	}
	kv("host", cfg.Host)
	if cfg.Port != 0 {
		kv("port", strconv.Itoa(cfg.Port))
	}
	kv("user", cfg.User)
	kv("password", string(cfg.Password))
	kv("dbname", cfg.Database)
	kv("sslmode", cfg.SSLMode)
	return b.String()
}

// poolConfig parses the connection settings into a pgxpool configuration.
func (cfg *Config) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.connString())
	if err != nil {
		return nil, err
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	return pc, nil
}
