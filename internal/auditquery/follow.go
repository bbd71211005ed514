package auditquery

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Follower reads the rows committed after it started, in id order, for
// otelaudit tail -f and the viewer's live updates.
//
// Ids come from the table's identity, assigned at insert; transactions
// commit in any order, so an id below the highest one seen can still
// appear (a batch that started earlier commits later). The follower
// therefore remembers the ids it skipped over ("pending") for Settle and
// asks for them again on every poll; an id still missing after Settle was
// never committed (a rolled-back batch, an insert that hit the idempotency
// key) and is forgotten. Each poll is two index lookups: the new ids of the
// whole table (id > highest seen, or pending), then the rows among them that
// match the filter.
type Follower struct {
	db     DB
	table  string
	filter Filter

	// Settle is how long a skipped id is waited for (default 30 s).
	Settle time.Duration
	// Batch caps the ids read per poll (default 10,000); a poll that hits it
	// is followed by another at once.
	Batch int

	maxID   int64
	pending map[int64]time.Time
	now     func() time.Time
}

// maxPending bounds the ids a Follower waits for.
const maxPending = 100_000

// NewFollower returns a Follower of f that reports rows with an id above
// afterID.
func NewFollower(db DB, table string, f Filter, afterID int64) (*Follower, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &Follower{db: db, table: table, filter: f, Settle: 30 * time.Second, Batch: 10_000,
		maxID: afterID, pending: map[int64]time.Time{}, now: time.Now}, nil
}

// MaxID returns the highest id of the table, 0 when it is empty: where a
// Follower that should report only new rows starts.
func MaxID(ctx context.Context, db DB, table string) (int64, error) {
	rows, err := db.Query(ctx, "SELECT coalesce(max(id), 0) FROM "+ident(table))
	if err != nil {
		return 0, fmt.Errorf("auditquery: max id: %w", err)
	}
	defer rows.Close()
	var id int64
	if rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return 0, fmt.Errorf("auditquery: max id: %w", err)
		}
	}
	return id, rows.Err()
}

// Poll reads what was committed since the last poll and calls fn for each
// matching row in id order. more reports that the poll hit Batch and
// another should follow at once.
func (fl *Follower) Poll(ctx context.Context, fn func(*Row) error) (n int, more bool, err error) {
	ids, more, err := fl.NextIDs(ctx)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}

	var b builder
	b.filter(&fl.filter)
	b.add(`id = ANY(` + b.arg(ids) + `::bigint[])`)
	rows, err := fl.db.Query(ctx, "SELECT "+columns+extracted+" FROM "+ident(fl.table)+b.clause()+" ORDER BY id", b.args...)
	if err != nil {
		return 0, false, fmt.Errorf("auditquery: follow: %w", err)
	}
	defer rows.Close()
	var r Row
	for rows.Next() {
		if err := scanRow(rows, &r); err != nil {
			return n, more, fmt.Errorf("auditquery: follow: %w", err)
		}
		if err := fn(&r); err != nil {
			return n, more, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, more, fmt.Errorf("auditquery: follow: %w", err)
	}
	return n, more, nil
}

// NextIDs returns, in ascending order, the ids of the whole table (not only
// the rows the filter selects) committed since the last call: new ids and
// late commits of ids skipped before. Each id is returned once. Poll is
// NextIDs and a read of the rows among them; a caller that only counts
// them can use [SummarizeBucketsOf] instead.
func (fl *Follower) NextIDs(ctx context.Context) (ids []int64, more bool, err error) {
	now := fl.now()
	for id, seen := range fl.pending {
		if now.Sub(seen) > fl.Settle {
			delete(fl.pending, id)
		}
	}
	pending := make([]int64, 0, len(fl.pending))
	for id := range fl.pending {
		pending = append(pending, id)
	}
	ids, err = fl.newIDs(ctx, pending)
	if err != nil || len(ids) == 0 {
		return nil, false, err
	}
	more = len(ids) >= fl.Batch
	for _, id := range ids {
		if _, ok := fl.pending[id]; ok {
			delete(fl.pending, id)
			continue
		}
		if id > fl.maxID {
			for gap := fl.maxID + 1; gap < id && len(fl.pending) < maxPending; gap++ {
				fl.pending[gap] = now
			}
			fl.maxID = id
		}
	}
	return ids, more, nil
}

func (fl *Follower) newIDs(ctx context.Context, pending []int64) ([]int64, error) {
	var b builder
	if len(pending) > 0 {
		b.add(`(id > ` + b.arg(fl.maxID) + ` OR id = ANY(` + b.arg(pending) + `::bigint[]))`)
	} else {
		b.add(`id > ` + b.arg(fl.maxID))
	}
	rows, err := fl.db.Query(ctx, "SELECT id FROM "+ident(fl.table)+b.clause()+" ORDER BY id LIMIT "+b.arg(fl.Batch), b.args...)
	if err != nil {
		return nil, fmt.Errorf("auditquery: follow: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("auditquery: follow: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auditquery: follow: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}
