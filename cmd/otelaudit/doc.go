// Command otelaudit is the operator CLI of the otelaudit audit trail: it
// migrates the schema, applies retention, verifies the trail's tamper
// evidence, and lets security engineers, auditors and on-call staff query,
// follow, export and browse the audited tool calls.
//
// Conventions, for every subcommand:
//
//   - --database-url selects the database; without it $OTELAUDIT_DATABASE_URL,
//     then the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
//     PGDATABASE, PGSSLMODE, ...) as pgx parses an empty conninfo.
//   - Exit codes: 0 done, 1 a finding (tampering found, ...), 2 could not run
//     (bad flags, database unreachable, ...).
//   - Data goes to stdout; progress and colour go to stderr, and only when
//     stderr is a terminal.
//
// See root.go for how a file adds a subcommand.
package main
