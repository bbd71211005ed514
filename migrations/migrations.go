// Package migrations holds the otelaudit schema as golang-migrate SQL files,
// embedded in the binary, and applies it.
//
// The files are plain golang-migrate migrations: they can also be applied with
// the migrate CLI (`migrate -source file://migrations -database ... up`).
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

	"github.com/golang-migrate/migrate/v4"
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
	table string
}

// Option configures Up.
type Option func(*config)

// WithTable sets the name of the audit table (default [DefaultTable]). Every
// identifier of the schema that starts with audit_log is renamed to start with
// name: the reject table becomes name_rejects and golang-migrate's version
// table name_schema_migrations. The name must be a lower-case SQL identifier
// of at most 40 characters; use the connection's search_path to choose a
// schema.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// ValidateTable reports whether name can be used as the audit table name.
func ValidateTable(name string) error {
	if !tableName.MatchString(name) {
		return fmt.Errorf("migrations: table name %q: want a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 40 characters)", name)
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
	cfg := config{table: DefaultTable}
	for _, o := range opts {
		o(&cfg)
	}
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
	go func() { done <- m.Up() }()
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
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrations: up: %w", err)
	}
	if closeErr != nil {
		return fmt.Errorf("migrations: close: %w", closeErr)
	}
	return nil
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
