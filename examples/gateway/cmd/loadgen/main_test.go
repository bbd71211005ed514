package main

import (
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestLoadgenSmoke runs the load generator briefly in both modes: it fails
// when a call errors or audit_log does not hold exactly one row per call.
func TestLoadgenSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("load generator smoke test")
	}
	o := options{
		duration: time.Second,
		warmup:   200 * time.Millisecond,
		sessions: 4,
		rounds:   1,
		rate:     400,
		tool:     "echo",
		queue:    8192,
		batch:    512,
		interval: 100 * time.Millisecond,
		gc:       "default",
		// Unauthenticated requests beside the sessions cost no row.
		anonymous: 2,
		dbURL:     pgtest.NewDatabase(t),
	}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
}
