// Package migrations holds the otelaudit schema as golang-migrate SQL files,
// embedded in the binary, applies it, and maintains its time partitions.
//
// The files are plain golang-migrate migrations: they can also be applied with
// the migrate CLI (`migrate -source file://migrations -database ... up`).
//
// Schema v2 (migration 000002) makes the audit table range-partitioned by
// "timestamp", one partition per day by default, plus a default partition
// for timestamps no partition covers. [EnsurePartitions] creates the
// partitions ahead of time and [DropPartitions] removes whole partitions for
// retention; both call SECURITY DEFINER functions the migration creates, so
// a writer that holds only the otelaudit_writer role (INSERT, no DDL) can
// run them, and both are serialised per table by an advisory lock.
package migrations
