package main

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// verify runs the tamper-evidence verification (package verify).
func (c *integrityChecker) verify(context.Context) integrityReport {
	return integrityReport{State: "sealed", Message: "sealed, but this build cannot verify seals: run otelaudit verify"}
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
