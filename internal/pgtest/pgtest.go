// Package pgtest gives tests a database of their own on a real PostgreSQL
// server, so that tests that claim database behaviour can run in parallel
// without sharing state.
//
// The server is the one named by OTELAUDIT_TEST_DATABASE_URL, or the local
// server at 127.0.0.1:5432 (user postgres, trust auth) that scripts/ensure-postgres.sh
// starts. A test never stops or reconfigures that server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the administrative connection used when
// OTELAUDIT_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the URL of the test server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("OTELAUDIT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database for the calling test and drops it
// when the test ends. It returns the database's URL. The test fails at once
// when the server cannot be reached: database tests are never skipped.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	url, drop, err := CreateDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Logf("%v", err)
		}
	})
	return url
}

// CreateDatabase creates an empty database on the test server and returns
// its URL and a function that drops it. It is for TestMain and examples,
// which have no testing.TB; tests use NewDatabase.
func CreateDatabase(ctx context.Context) (url string, drop func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin := AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: connect to %s (run scripts/ensure-postgres.sh or set OTELAUDIT_TEST_DATABASE_URL): %w", redact(admin), err)
	}
	defer conn.Close(ctx)

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "otelaudit_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("pgtest: drop database %s: %w", name, err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("pgtest: drop database %s: %w", name, err)
		}
		return nil
	}
	return WithDatabase(admin, name), drop, nil
}

// WithDatabase returns rawURL with its database replaced by name.
func WithDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + name
	return u.String()
}

// Connect opens a single connection to databaseURL, closed when the test ends.
func Connect(tb testing.TB, databaseURL string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "the test database"
	}
	return u.Redacted()
}
