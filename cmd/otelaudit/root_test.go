package main

import (
	"context"
	"net/url"
	"testing"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestDatabaseURLPrecedence: --database-url, then $OTELAUDIT_DATABASE_URL,
// then the libpq variables through pgx's parsing of an empty conninfo.
func TestDatabaseURLPrecedence(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	flag := rootCmd.PersistentFlags().Lookup("database-url")
	t.Cleanup(func() { flag.Changed = false; globalFlags.databaseURL = "" })

	// libpq variables only.
	t.Setenv(envDatabaseURL, "")
	t.Setenv("PGHOST", u.Hostname())
	t.Setenv("PGPORT", u.Port())
	t.Setenv("PGUSER", u.User.Username())
	t.Setenv("PGDATABASE", u.Path[1:])
	t.Setenv("PGSSLMODE", "disable")
	if got := databaseURL(); got != "" {
		t.Fatalf("databaseURL() = %q, want empty (libpq variables)", got)
	}
	pool, err := openPool(ctx)
	if err != nil {
		t.Fatalf("openPool from PG* variables: %v", err)
	}
	var db string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != u.Path[1:] {
		t.Fatalf("current_database() = %q, %v; want %q", db, err, u.Path[1:])
	}
	pool.Close()

	// $OTELAUDIT_DATABASE_URL wins over PG*.
	t.Setenv(envDatabaseURL, "postgres://nobody@127.0.0.1:1/x")
	if got := databaseURL(); got != "postgres://nobody@127.0.0.1:1/x" {
		t.Fatalf("databaseURL() = %q, want the environment's", got)
	}
	// --database-url wins over both.
	if err := flag.Value.Set(u.String()); err != nil {
		t.Fatal(err)
	}
	flag.Changed = true
	if got := databaseURL(); got != u.String() {
		t.Fatalf("databaseURL() = %q, want the flag's", got)
	}
	pool, err = openPool(ctx)
	if err != nil {
		t.Fatalf("openPool from the flag: %v", err)
	}
	pool.Close()
}
