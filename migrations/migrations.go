package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultTable is the name of the audit table.
const DefaultTable = "audit_log"

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

type config struct {
	table      string
	ahead      time.Duration
	beforeDrop DropHook
}

func newConfig(opts []Option) config {
	cfg := config{table: DefaultTable, ahead: DefaultAhead}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

// Option configures Up and the partition functions; each ignores the
// options that do not concern it.
type Option func(*config)

// WithTable sets the name of the audit table (default [DefaultTable]). Every
// identifier of the schema that starts with audit_log is renamed to start with
// name: the reject table becomes name_rejects and golang-migrate's version
// table name_schema_migrations. The name must be a lower-case SQL identifier
// of at most 40 characters; use the connection's search_path to choose a
// schema.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// ValidateTable reports whether name can be used as the audit table name:
// a lower-case SQL identifier of at most 40 characters that is not one of
// PostgreSQL's reserved key words. Up calls it before it touches the
// database, so a bad name never leaves a dirty version table behind.
func ValidateTable(name string) error {
	if !tableName.MatchString(name) {
		return fmt.Errorf("migrations: table name %q: want a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 40 characters)", name)
	}
	if _, ok := reserved[name]; ok {
		return fmt.Errorf("migrations: table name %q is a reserved word in PostgreSQL: choose another, e.g. %q", name, name+"_audit")
	}
	return nil
}

// MigrationsTable returns the golang-migrate version table used for the audit
// table named table.
func MigrationsTable(table string) string { return table + "_schema_migrations" }

// Up applies every pending migration to the database at databaseURL (a
// postgres:// URL or a libpq keyword/value string; empty means the libpq
// environment defaults PGHOST, PGUSER, ...). It is a no-op when the schema is
// up to date, and safe to call from many processes at once: golang-migrate
// serialises them with a PostgreSQL advisory lock.
func Up(ctx context.Context, databaseURL string, opts ...Option) error {
	cc, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("migrations: parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	return UpDB(ctx, db, opts...)
}

// UpDB is [Up] over an open *sql.DB, for callers that already hold one (for
// example stdlib.OpenDBFromPool of a pgxpool.Pool). It does not close db.
func UpDB(ctx context.Context, db *sql.DB, opts ...Option) error {
	return run(ctx, db, opts, "up", func(int) bool { return true }, func(m *migrate.Migrate) error { return m.Up() })
}

// Migrate moves the schema of the database at databaseURL to version, up or
// down (0 removes every table the migrations made; the cluster-global roles
// stay). It is for operators (otelaudit migrate --to) and upgrade tests; a
// down migration from v2 refuses, and changes nothing, when two rows share a
// request_id.
func Migrate(ctx context.Context, databaseURL string, version uint, opts ...Option) error {
	cc, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("migrations: parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	op := fmt.Sprintf("migrate to version %d", version)
	up := func(current int) bool { return int(version) > current }
	if version == 0 {
		return run(ctx, db, opts, op, up, func(m *migrate.Migrate) error { return m.Down() })
	}
	return run(ctx, db, opts, op, up, func(m *migrate.Migrate) error { return m.Migrate(version) })
}

// Version reports the schema version of the database at databaseURL and
// whether a failed migration left it dirty; version 0 means no migration
// was applied.
func Version(ctx context.Context, databaseURL string, opts ...Option) (version uint, dirty bool, err error) {
	cc, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return 0, false, fmt.Errorf("migrations: parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	err = run(ctx, db, opts, "version", nil, func(m *migrate.Migrate) error {
		var err error
		version, dirty, err = m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		return err
	})
	return version, dirty, err
}

// Latest is the schema version the embedded migrations lead to.
func Latest() uint {
	src, err := iofs.New(files, ".")
	if err != nil {
		return 0
	}
	defer src.Close()
	v, err := src.First()
	for err == nil {
		next, nerr := src.Next(v)
		if nerr != nil {
			break
		}
		v = next
	}
	return v
}

// run applies f to a migrate instance over db. up tells, from the version
// before f, whether f migrates up; it is used to repair the version table
// after a failed migration (nil: f migrates nothing).
func run(ctx context.Context, db *sql.DB, opts []Option, op string, up func(current int) bool, f func(*migrate.Migrate) error) error {
	cfg := newConfig(opts)
	if err := ValidateTable(cfg.table); err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}

	src, err := iofs.New(files, ".")
	if err != nil {
		return fmt.Errorf("migrations: open embedded files: %w", err)
	}
	var srcDriver source.Driver = src
	if cfg.table != DefaultTable {
		srcDriver = renamed{Driver: src, table: cfg.table}
	}
	dbDriver, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: MigrationsTable(cfg.table)})
	if err != nil {
		return fmt.Errorf("migrations: prepare version table: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", srcDriver, "pgx5", dbDriver)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}

	done := make(chan error, 1)
	go func() {
		// Read the version under golang-migrate's lock: another process
		// may be half-way through a migration (and marked it dirty).
		if err := dbDriver.Lock(); err != nil {
			done <- err
			return
		}
		before, beforeDirty, err := dbDriver.Version()
		if uerr := dbDriver.Unlock(); err == nil {
			err = uerr
		}
		if err != nil {
			done <- fmt.Errorf("read version: %w", err)
			return
		}
		if beforeDirty {
			done <- fmt.Errorf("%s: version %d is dirty: a migration failed half-way outside otelaudit; "+
				"check the schema by hand, then set the version with `migrate force` (see README)", MigrationsTable(cfg.table), before)
			return
		}
		err = f(m)
		if err != nil && !errors.Is(err, migrate.ErrNoChange) && up != nil {
			err = repairDirty(src, dbDriver, up(before), err)
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case m.GracefulStop <- true:
		default:
		}
		// Closing the driver breaks a wait on the advisory lock.
		_ = dbDriver.Close()
		<-done
		return fmt.Errorf("migrations: %w", ctx.Err())
	}
	closeErr := dbDriver.Close()
	var dbErr database.Error
	if errors.As(err, &dbErr) && dbErr.OrigErr != nil {
		// Its text carries the whole migration file; keep the cause.
		err = fmt.Errorf("migration failed: %w%s", dbErr.OrigErr, repairNote(err))
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrations: %s: %w", op, err)
	}
	if closeErr != nil {
		return fmt.Errorf("migrations: close: %w", closeErr)
	}
	return nil
}

// repairDirty undoes the dirty mark golang-migrate leaves when a migration
// fails. Every otelaudit migration runs as one implicit transaction (no
// statement in them may run outside one), so a failed file changed nothing:
// the schema is at the version before the failed step, and the version
// table is set back to it. Only a failure of the final commit's
// acknowledgement could make that wrong; then the repair itself fails on the
// lost connection and the version stays dirty.
func repairDirty(src source.Driver, db database.Driver, up bool, cause error) error {
	v, dirty, err := db.Version()
	if err != nil || !dirty {
		return cause
	}
	clean := database.NilVersion
	switch {
	case up:
		if p, err := src.Prev(uint(v)); err == nil {
			clean = int(p)
		}
	case v == database.NilVersion:
		if first, err := src.First(); err == nil {
			clean = int(first)
		}
	default:
		next, err := src.Next(uint(v))
		if err != nil {
			return cause
		}
		clean = int(next)
	}
	if err := db.SetVersion(clean, false); err != nil {
		return fmt.Errorf("%w (and resetting the dirty version to %d failed: %v)", cause, clean, err)
	}
	return repaired{cause: cause, version: clean}
}

type repaired struct {
	cause   error
	version int
}

func (r repaired) Error() string {
	return r.cause.Error() + r.note()
}

func (r repaired) note() string {
	return fmt.Sprintf(" (nothing was changed: the migration rolled back, the version stays %d)", r.version)
}

func (r repaired) Unwrap() error { return r.cause }

func repairNote(err error) string {
	var r repaired
	if errors.As(err, &r) {
		return r.note()
	}
	return ""
}

// renamed serves the embedded migrations with the audit_log prefix of every
// identifier replaced by another table name.
type renamed struct {
	source.Driver
	table string
}

var prefix = regexp.MustCompile(`\baudit_log`)

func (r renamed) rewrite(rc io.ReadCloser, id string, err error) (io.ReadCloser, string, error) {
	if err != nil {
		return rc, id, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, id, err
	}
	out := prefix.ReplaceAllLiteralString(string(b), r.table)
	return io.NopCloser(strings.NewReader(out)), id, nil
}

func (r renamed) ReadUp(version uint) (io.ReadCloser, string, error) {
	rc, id, err := r.Driver.ReadUp(version)
	return r.rewrite(rc, id, err)
}

func (r renamed) ReadDown(version uint) (io.ReadCloser, string, error) {
	rc, id, err := r.Driver.ReadDown(version)
	return r.rewrite(rc, id, err)
}
