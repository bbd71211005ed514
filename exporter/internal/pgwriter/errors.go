package pgwriter

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// isDataError reports whether a PostgreSQL error code blames the data of a
// row, so that splitting the batch can isolate it: data exceptions (class
// 22), integrity violations other than a duplicate request_id (class 23) and
// program limits such as a too-large value (class 54).
func isDataError(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "22", "54":
		return true
	case "23":
		return code != "23505"
	}
	return false
}

// Retryable reports whether err is a transient failure after which writing
// the same rows again may succeed: the connection failed, was refused or
// could not be established (whatever the server said), the server is
// shutting down or starting, too many connections, a serialization failure
// or deadlock, a lock timeout, or the context of the attempt was cancelled
// or expired before the write completed. Data errors, a statement timeout
// and a missing or unusable table are not retryable.
//
// It is the one retry classifier of both front ends (the SDK exporter and
// the Collector component). A context error counts as retryable because
// the write is idempotent and an attempt's deadline says nothing about the
// next attempt; a retry loop stops on its own context (backoff.Retry, the
// Collector's retry sender), not on this answer.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	// Failing to connect is retryable whatever the server said (wrong
	// password, database not there yet, starting up): an operator can fix
	// it, and the audit rows must wait for that, not be lost.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if len(pgErr.Code) != 5 {
			return false // not a SQLSTATE: nothing says a retry could help
		}
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: too many connections, disk full, out of memory
			"57": // operator intervention: admin shutdown, crash shutdown, cannot connect now
			return pgErr.Code != "57014" // query_canceled is a statement timeout
		case "40": // serialization failure, deadlock
			return true
		case "55":
			return pgErr.Code == "55P03" // lock not available
		}
		return false
	}
	// No PostgreSQL code: the failure happened on the way (refused or cut
	// connection, EOF, broken pipe, "conn closed"), never in the data.
	return true
}
