// Package benchutil holds the small helpers the scale and schemacmp
// measurement commands share: databases made and dropped on the test server,
// pools, and the formatting of figures. It is not used by the library.
package benchutil

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sentinel-gateway/otelaudit/migrations"
)

// EnvOr returns the environment variable k, or def when it is unset or empty.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// WithDB returns the PostgreSQL URL raw with its database replaced by name.
func WithDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		log.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Redact returns raw with its password hidden, for logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// Connect opens a small pool (4 connections) on u.
func Connect(ctx context.Context, u string) *pgxpool.Pool {
	pc, err := pgxpool.ParseConfig(u)
	if err != nil {
		log.Fatal(err)
	}
	pc.MaxConns = 4
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		log.Fatal(err)
	}
	return p
}

// mustDB drops and creates database name, migrates it to version and
// returns a small pool on it.

// FreshDB drops and creates database name on the server of admin, migrates it to version and returns a small pool on it.
func FreshDB(ctx context.Context, admin, name string, version uint) *pgxpool.Pool {
	DropDB(ctx, admin, name)
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		log.Fatal(err)
	}
	u := WithDB(admin, name)
	if err := migrations.Migrate(ctx, u, version); err != nil {
		log.Fatal(err)
	}
	return Connect(ctx, u)
}

// DropDB drops database name, closing its connections.
func DropDB(ctx context.Context, admin, name string) {
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		log.Fatal(err)
	}
}

// Median returns the middle value of v (0 when empty) without reordering v.
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// KList formats rates as thousands, e.g. "37.2k 40.1k".
func KList(v []float64) string {
	var b []string
	for _, x := range v {
		b = append(b, fmt.Sprintf("%.1fk", x/1000))
	}
	return strings.Join(b, " ")
}

// MS formats d in milliseconds with two decimals.
func MS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// MiB formats b bytes in MiB.
func MiB(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// LoadAvg returns the 1, 5 and 15 minute load averages, or "?".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
