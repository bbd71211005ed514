package exporter

import (
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// EnvDatabaseURL names the environment variable read for the database URL
// when neither WithDatabaseURL nor WithPool is given.
const EnvDatabaseURL = "OTELAUDIT_DATABASE_URL"

// RetryConfig configures the retries of a batch whose write failed with a
// transient error (connection refused or cut, server shutting down, too many
// connections, serialization failure). Retries never outlive the context
// passed to Export.
type RetryConfig struct {
	// Enabled turns retries on. The default is on.
	Enabled bool
	// InitialInterval is the wait before the first retry.
	InitialInterval time.Duration
	// MaxInterval caps the wait between two retries.
	MaxInterval time.Duration
	// MaxElapsedTime gives up on a batch after this long; zero means only
	// the Export context bounds the retries.
	MaxElapsedTime time.Duration
}

// DefaultRetryConfig is the retry policy used unless WithRetry is given.
var DefaultRetryConfig = RetryConfig{
	Enabled:         true,
	InitialInterval: 50 * time.Millisecond,
	MaxInterval:     2 * time.Second,
	MaxElapsedTime:  time.Minute,
}

type config struct {
	databaseURL  string
	pool         *pgxpool.Pool
	migrate      bool
	table        string
	maxArgsBytes int
	retry        RetryConfig
}

func newConfig(opts []Option) config {
	c := config{
		migrate: true,
		table:   migrations.DefaultTable,
		retry:   DefaultRetryConfig,
	}
	for _, o := range opts {
		c = o.apply(c)
	}
	if c.pool == nil && c.databaseURL == "" {
		c.databaseURL = os.Getenv(EnvDatabaseURL)
	}
	return c
}

// Option configures an [Exporter].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithDatabaseURL sets the PostgreSQL connection string: a postgres:// URL or
// a libpq keyword/value string. Without it and without WithPool, the
// exporter reads OTELAUDIT_DATABASE_URL and then falls back to the libpq
// environment (PGHOST, PGPORT, PGUSER, PGDATABASE, ...).
func WithDatabaseURL(url string) Option {
	return optionFunc(func(c config) config { c.databaseURL = url; return c })
}

// WithPool makes the exporter write through pool. The exporter never closes
// a pool it was given.
func WithPool(pool *pgxpool.Pool) Option {
	return optionFunc(func(c config) config { c.pool = pool; return c })
}

// WithMigrate sets whether New applies the schema migrations (default true).
// Turn it off where the schema is managed separately, for example with the
// migrate CLI and the files in the migrations package.
func WithMigrate(migrate bool) Option {
	return optionFunc(func(c config) config { c.migrate = migrate; return c })
}

// WithTable sets the audit table name (default "audit_log"); see
// migrations.WithTable for how the schema follows it.
func WithTable(name string) Option {
	return optionFunc(func(c config) config { c.table = name; return c })
}

// WithMaxArgsBytes bounds the request_args JSON stored per row (default
// 1 MiB); a larger document is replaced by a marker with its size and
// SHA-256.
func WithMaxArgsBytes(n int) Option {
	return optionFunc(func(c config) config { c.maxArgsBytes = n; return c })
}

// WithRetry sets the retry policy for transient database errors.
func WithRetry(rc RetryConfig) Option {
	return optionFunc(func(c config) config { c.retry = rc; return c })
}
