package migrations

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultAhead is how far past now [EnsurePartitions] creates partitions
// unless [WithAhead] says otherwise.
const DefaultAhead = 72 * time.Hour

// DB is a PostgreSQL connection the partition functions can run
// transactions on: *pgxpool.Pool, *pgx.Conn and pgx.Tx all are.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Partition is one partition of the audit table.
type Partition struct {
	// Name is the partition's table name, e.g. audit_log_p20261201.
	Name string
	// From and To bound the partition's rows by "timestamp", [From, To),
	// in UTC. For the default partition both are zero, except in a
	// [DropHook] call, where To is the cut-off: the default partition's
	// rows older than To are about to be deleted.
	From, To time.Time
	// Default marks the default partition, which holds the rows no other
	// partition covers (skewed clocks, late replays).
	Default bool
}

// DropHook is called by [DropPartitions] inside the transaction that will
// drop p, after p is locked (no row can enter it any more) and before the
// drop: every row whose "timestamp" lies in [p.From, p.To) is about to
// disappear. The hook may read and write through tx (for example to record
// the last seal of each stream in the range); an error rolls the
// transaction back, keeps p, and ends DropPartitions with that error.
// The table is locked against writers while the hook runs: keep it short.
type DropHook func(ctx context.Context, tx pgx.Tx, p Partition) error

// WithAhead sets how far past now [EnsurePartitions] creates partitions
// (default [DefaultAhead]). Values below one hour count as one hour.
func WithAhead(d time.Duration) Option { return func(c *config) { c.ahead = d } }

// WithBeforeDrop sets the hook [DropPartitions] calls before each drop.
func WithBeforeDrop(h DropHook) Option { return func(c *config) { c.beforeDrop = h } }

func (c config) fn(name string) string { return pgx.Identifier{c.table + "_" + name}.Sanitize() }

// EnsurePartitions creates the audit table's partitions that cover the time
// from now to now plus [WithAhead], cut by the partition width stored in the
// database (one day unless changed with [SetPartitionWidth]), and returns
// the names of those it created. It is cheap when they exist, and safe to
// call from many processes at once (an advisory lock per table serialises
// them); rows that landed in the default partition for a new partition's
// range are moved into it. It needs only the otelaudit_writer role.
func EnsurePartitions(ctx context.Context, db DB, opts ...Option) ([]string, error) {
	cfg := newConfig(opts)
	ahead := cfg.ahead
	if ahead < time.Hour {
		ahead = time.Hour
	}
	now := time.Now()
	return EnsurePartitionsRange(ctx, db, now, now.Add(ahead), opts...)
}

// EnsurePartitionsRange is [EnsurePartitions] for the time range [from, to)
// (at most 1000 days), for example to prepare partitions for a backfill.
func EnsurePartitionsRange(ctx context.Context, db DB, from, to time.Time, opts ...Option) ([]string, error) {
	cfg := newConfig(opts)
	if err := ValidateTable(cfg.table); err != nil {
		return nil, err
	}
	var created []string
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT * FROM "+cfg.fn("ensure_partitions")+"($1, $2)", from, to)
		if err != nil {
			return err
		}
		created, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrations: ensure partitions of %s: %w", cfg.table, err)
	}
	return created, nil
}

// Partitions lists the audit table's partitions, oldest first, the default
// partition first of all.
func Partitions(ctx context.Context, db DB, opts ...Option) ([]Partition, error) {
	cfg := newConfig(opts)
	if err := ValidateTable(cfg.table); err != nil {
		return nil, err
	}
	var out []Partition
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		out, err = partitions(ctx, tx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrations: list partitions of %s: %w", cfg.table, err)
	}
	return out, nil
}

func partitions(ctx context.Context, tx pgx.Tx, cfg config) ([]Partition, error) {
	rows, err := tx.Query(ctx, "SELECT name, lo, hi, is_default FROM "+cfg.fn("partitions")+"()")
	if err != nil {
		return nil, err
	}
	var out []Partition
	for rows.Next() {
		var p Partition
		var lo, hi *time.Time
		if err := rows.Scan(&p.Name, &lo, &hi, &p.Default); err != nil {
			rows.Close()
			return nil, err
		}
		if lo != nil {
			p.From = lo.UTC()
		}
		if hi != nil {
			p.To = hi.UTC()
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Default != out[j].Default {
			return out[i].Default
		}
		return out[i].From.Before(out[j].From)
	})
	return out, nil
}

// DropPartitions removes the audit rows older than olderThan in whole
// partitions: every partition whose range ends at or before olderThan is
// dropped (O(1) in its size, no dead rows, no VACUUM), oldest first, each in
// a transaction of its own with the [WithBeforeDrop] hook. The audit table
// is locked only while a partition is detached (milliseconds); the detached
// tables' files are removed afterwards, in a transaction that locks no
// table the writers use. Then the default
// partition's rows older than olderThan are deleted (the same hook first,
// with Default set). A partition that ends after olderThan stays whole.
//
// It returns what it removed, also when it stops early with an error.
// A user who is not the table's owner (the otelaudit_writer role) may only
// remove rows older than the min_retention stored in the database (7 days
// unless the owner changes it); the owner may remove anything.
func DropPartitions(ctx context.Context, db DB, olderThan time.Time, opts ...Option) ([]Partition, error) {
	cfg := newConfig(opts)
	if err := ValidateTable(cfg.table); err != nil {
		return nil, err
	}
	olderThan = olderThan.UTC()
	var listed []Partition
	if err := inTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		listed, err = partitions(ctx, tx, cfg)
		return err
	}); err != nil {
		return nil, fmt.Errorf("migrations: list partitions of %s: %w", cfg.table, err)
	}
	var twoStep bool
	if err := inTx(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT to_regprocedure($1) IS NOT NULL`, cfg.fn("detach_partition")+"(text)").Scan(&twoStep)
	}); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var dropped []Partition
	defer func() {
		if twoStep {
			// Remove the detached tables' files (also those a crash left).
			_ = inTx(context.WithoutCancel(ctx), db, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT * FROM "+cfg.fn("drop_detached")+"()")
				return err
			})
		}
	}()
	for _, p := range listed {
		if p.Default || p.To.After(olderThan) {
			continue
		}
		err := inTx(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT * FROM "+cfg.fn("begin_drop")+"($1)", p.Name); err != nil {
				return err
			}
			if err := recordRetention(ctx, tx, cfg, p); err != nil {
				return err
			}
			if cfg.beforeDrop != nil {
				if err := cfg.beforeDrop(ctx, tx, p); err != nil {
					return fmt.Errorf("before-drop hook: %w", err)
				}
			}
			// Detach (milliseconds, whatever the size) where the schema
			// can; the files go in the second step below, with no lock on
			// the audit table.
			step := "drop_partition"
			if twoStep {
				step = "detach_partition"
			}
			_, err := tx.Exec(ctx, "SELECT "+cfg.fn(step)+"($1)", p.Name)
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			continue // someone else dropped it first
		}
		if err != nil {
			return dropped, fmt.Errorf("migrations: drop partition %s: %w", p.Name, err)
		}
		dropped = append(dropped, p)
	}

	def := Partition{Name: cfg.table + "_default", To: olderThan, Default: true}
	var trimmed int64
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT "+cfg.fn("begin_trim")+"($1)", olderThan).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if err := recordRetention(ctx, tx, cfg, def); err != nil {
			return err
		}
		if cfg.beforeDrop != nil {
			if err := cfg.beforeDrop(ctx, tx, def); err != nil {
				return fmt.Errorf("before-drop hook: %w", err)
			}
		}
		return tx.QueryRow(ctx, "SELECT "+cfg.fn("trim_default")+"($1)", olderThan).Scan(&trimmed)
	})
	if err != nil {
		return dropped, fmt.Errorf("migrations: trim default partition of %s: %w", cfg.table, err)
	}
	if trimmed > 0 {
		dropped = append(dropped, def)
	}
	return dropped, nil
}

// SetPartitionWidth sets the time range each new partition covers (from one
// hour to 31 days; existing partitions keep theirs). It needs the table's
// owner.
func SetPartitionWidth(ctx context.Context, db DB, width time.Duration, opts ...Option) error {
	return setSetting(ctx, db, "width", width, opts)
}

// SetMinRetention sets the youngest data a user who is not the table's owner
// may drop with [DropPartitions] (default 7 days). It needs the table's
// owner.
func SetMinRetention(ctx context.Context, db DB, d time.Duration, opts ...Option) error {
	return setSetting(ctx, db, "min_retention", d, opts)
}

func setSetting(ctx context.Context, db DB, column string, d time.Duration, opts []Option) error {
	cfg := newConfig(opts)
	if err := ValidateTable(cfg.table); err != nil {
		return err
	}
	table := pgx.Identifier{cfg.table + "_partitioning"}.Sanitize()
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE "+table+" SET "+column+" = make_interval(secs => $1)", d.Seconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("migrations: set %s of %s: %w", column, cfg.table, err)
	}
	return nil
}

func inTx(ctx context.Context, db DB, f func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}
