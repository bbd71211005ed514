package exporter

import (
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
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
	databaseURL   string
	pool          *pgxpool.Pool
	migrate       bool
	table         string
	maxArgsBytes  int
	retry         RetryConfig
	retrySet      bool
	spoolDir      string
	spoolMax      int64
	spoolWait     bool
	meterProvider metric.MeterProvider
	probeInterval time.Duration

	writeConcurrency int

	// tasks are the background maintenance tasks options add (partition
	// maintenance, retention); see maintenance.go.
	tasks []task
	// writerOptions are handed to pgwriter.New: options that change how
	// rows are written (sealing with a stream id and signing key) add here.
	writerOptions []pgwriter.Option

	integrity integrityConfig // integrity.go
	// partitions: partition maintenance and retention (retention.go).
	partitions partitionConfig
}

func newConfig(opts []Option) config {
	c := config{
		migrate: true,
		table:   migrations.DefaultTable,
		retry:   DefaultRetryConfig,

		probeInterval: 250 * time.Millisecond,
	}
	for _, o := range opts {
		c = o.apply(c)
	}
	if c.spoolDir != "" && !c.retrySet {
		// With a spool, a batch waits a short while for PostgreSQL, then
		// goes to disk so that the in-memory queue keeps draining.
		c.retry.MaxElapsedTime = DefaultSpoolAfter
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
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
	return optionFunc(func(c config) config { c.retry, c.retrySet = rc, true; return c })
}

// WithWriteConcurrency splits a batch of at least 2×256 audit records into
// up to n parts written at once, each with its own COPY on its own
// connection (default 1). Mapping and encoding then use more cores too.
// Measure before raising it: see BENCHMARKS.md.
func WithWriteConcurrency(n int) Option {
	return optionFunc(func(c config) config { c.writeConcurrency = n; return c })
}

// DefaultSpoolAfter is how long a batch is retried against PostgreSQL before
// it goes to the spool, unless WithRetry sets another MaxElapsedTime.
const DefaultSpoolAfter = 250 * time.Millisecond

// WithSpool keeps batches on local disk, in dir, while PostgreSQL cannot be
// reached: a batch that still fails after the retry budget (DefaultSpoolAfter
// unless WithRetry says otherwise) is appended to the spool (checksummed,
// fsynced) and Export succeeds, so that the in-memory queue keeps draining.
// While the spool holds batches, new batches go straight to it, oldest
// first; a background replayer writes them to PostgreSQL as soon as it is
// back and deletes them only once committed. A spool left by a crashed
// process is replayed when an exporter opens the directory again.
//
// The spool never grows past maxBytes. When it is full, a new batch is
// dropped, counted in otelaudit.records.dropped{reason="spool_full"} and
// reported through the error Export returns (the SDK hands it to
// otel.Handle), unless WithSpoolWait(true) makes Export wait for room;
// Health fails until the replayer has made room. Any other failed append
// (ENOSPC, EFBIG, an I/O error) makes Export wait and try again, within its
// context, while Health fails; the batch is dropped and counted
// (reason "spool_error") only when the context ends first.
func WithSpool(dir string, maxBytes int64) Option {
	return optionFunc(func(c config) config { c.spoolDir, c.spoolMax = dir, maxBytes; return c })
}

// WithSpoolWait makes Export wait, within its context, for room in a full
// spool instead of dropping the batch. The BatchProcessor's queue then fills
// and the processor drops (and counts) what no longer fits: waiting moves
// the loss, it does not remove it.
func WithSpoolWait(wait bool) Option {
	return optionFunc(func(c config) config { c.spoolWait = wait; return c })
}

// WithMeterProvider sets the MeterProvider of the exporter's own metrics
// (rows written, spooled, replayed, rejected, dropped, export duration,
// spool bytes). The default is the global MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c config) config { c.meterProvider = mp; return c })
}
