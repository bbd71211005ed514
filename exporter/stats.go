package exporter

// Stats are the exporter's running totals, the same figures as its metrics
// (each is counted once, in the instrument and the total together).
type Stats struct {
	// Written rows were inserted into audit_log (directly or replayed).
	Written int64
	// Duplicates were already stored (replays); nothing was written for them.
	Duplicates int64
	// Rejected rows were refused by PostgreSQL and stored in the reject table.
	Rejected int64
	// Skipped records were not audit events.
	Skipped int64
	// Spooled rows went to the spool; Replayed rows came back out of it
	// into PostgreSQL (written or found already there).
	Spooled, Replayed int64
	// Dropped records were lost, and reported; DroppedByReason splits them
	// by the reason attribute of otelaudit.records.dropped. Records the
	// processor refused are counted by the processor, not here.
	Dropped         int64
	DroppedByReason map[string]int64
	// WriteErrors are writes that failed with an error no retry can fix,
	// ReplayErrors failed replays of spooled batches, SpoolErrors spool
	// appends that failed other than by a full spool: the figures of
	// otelaudit.exporter.errors{kind}.
	WriteErrors, ReplayErrors, SpoolErrors int64
	// SpoolBacklog is the number of spooled batches not yet replayed
	// (zero without a spool): the spool is drained when it is zero.
	SpoolBacklog int
}

// Stats returns the exporter's running totals.
func (e *Exporter) Stats() Stats { return Stats(e.deliv.Stats()) }
