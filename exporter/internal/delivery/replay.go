package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/spool"
	"github.com/sentinel-gateway/otelaudit/exporter/internal/telemetry"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// maintain runs until Close: while the last write failed it probes
// PostgreSQL, and whenever PostgreSQL takes writes it replays the spool,
// oldest batch first.
func (d *Delivery) maintain() {
	defer close(d.done)
	tick := time.NewTicker(d.cfg.ProbeInterval)
	defer tick.Stop()
	var appended <-chan struct{}
	if d.cfg.Spool != nil {
		appended = d.cfg.Spool.Appended()
	}
	for {
		select {
		case <-d.life.Done():
			return
		case <-tick.C:
		case <-appended:
		}
		writable := !(d.down.Load() || d.permanent.Load() != nil) || d.probe()
		if writable && d.cfg.Spool != nil && d.cfg.Spool.Len() > 0 {
			d.replay()
		}
		d.recoverSpool()
	}
}

// emptyBatch is an encoded batch of no rows: the spool probe appends it.
var emptyBatch = auditrow.AppendRows(nil, nil)

// recoverSpool clears a spool failure once it cannot cost a record, or
// once the spool takes writes again. A fail-closed gateway sends no records
// while Health fails, so without this a failure would outlive its cause:
//   - PostgreSQL takes writes and the spool is empty: new batches go
//     straight to PostgreSQL, the spool is not needed;
//   - otherwise, when no Deliver is retrying the spool itself, an empty
//     batch (no records; replayed as nothing) is appended as a probe.
//
// A full spool is cleared by the replayer as it makes room, not here.
func (d *Delivery) recoverSpool() {
	f := d.spoolErr.Load()
	if f == nil || d.cfg.Spool == nil {
		return
	}
	if !d.down.Load() && d.permanent.Load() == nil && d.cfg.Spool.Len() == 0 {
		d.spoolErr.CompareAndSwap(f, nil)
		return
	}
	if isFull(f.err) || d.waiting.Load() > 0 {
		return
	}
	if err := d.cfg.Spool.AppendRecords(emptyBatch, 0); err == nil {
		d.spoolErr.CompareAndSwap(f, nil)
	}
}

// probe runs the configured probe and reports whether PostgreSQL accepts
// writes. A success clears the write failures, so that Health recovers
// without traffic (a fail-closed gateway sends none while it is unhealthy);
// the next write or replay sets them again if they are not gone.
func (d *Delivery) probe() bool {
	if d.cfg.Probe == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(d.life, 2*time.Second)
	defer cancel()
	if err := d.cfg.Probe(ctx); err != nil {
		if d.life.Err() == nil && d.transient(ctx, err) {
			d.down.Store(true)
		}
		return false
	}
	d.down.Store(false)
	d.permanent.Store(nil)
	return true
}

// replay writes spooled batches until the spool is empty or a write fails.
func (d *Delivery) replay() {
	sp := d.cfg.Spool
	for d.life.Err() == nil {
		b, ok, err := sp.Oldest()
		if err != nil {
			d.acct.failed(context.Background(), "replay")
			d.replayRep.report(fmt.Errorf("exporter: read the spool: %w", err))
			return
		}
		if !ok {
			return
		}
		rows, err := auditrow.DecodeRows(b.Data)
		if err == nil && len(rows) == 0 {
			// A probe of recoverSpool: nothing to write.
		} else if err != nil {
			// The spool's checksum passed, so this is a bug or a spool
			// written by another version: count it, report it, never loop
			// on it. How many records it held is unknown: count one.
			d.acct.drop(context.Background(), 1, telemetry.ReasonSpoolCorrupt)
			d.corruptRep.report(fmt.Errorf("exporter: spooled batch dropped (%s): %w", telemetry.ReasonSpoolCorrupt, err))
		} else {
			ctx, cancel := context.WithTimeout(d.life, d.cfg.ReplayTimeout)
			res, err := d.writeParts(ctx, rows)
			cancel()
			d.acct.result(context.Background(), res)
			if err != nil {
				if d.life.Err() != nil {
					return // shutting down: the batch stays spooled
				}
				// A permanent failure is counted and reported by
				// writeFailed; a transient one here.
				if d.writeFailed(d.life, err, &d.replayRep, "replay") {
					d.acct.failed(context.Background(), "replay")
					d.replayRep.report(fmt.Errorf("exporter: replay of %d spooled rows failed; they stay in the spool: %w", len(rows), err))
				}
				return
			}
			d.acct.replayed.add(context.Background(), int64(len(rows)))
			d.down.Store(false)
			d.permanent.Store(nil)
		}
		if err := sp.Ack(b); err != nil {
			d.acct.failed(context.Background(), "replay")
			d.replayRep.report(fmt.Errorf("exporter: spool ack: %w", err))
			return
		}
		if f := d.spoolErr.Load(); f != nil && isFull(f.err) {
			d.spoolErr.CompareAndSwap(f, nil) // there is room again
		}
	}
}

func isFull(err error) bool { return errors.Is(err, spool.ErrFull) }

// Corrupt counts records the spool lost to damage (a flipped byte, a torn
// tail), as dropped with reason spool_corrupt, and reports them; the spool
// calls it through spool.WithOnCorrupt, at Open and during replay.
func (d *Delivery) Corrupt(records int, err error) {
	d.acct.drop(context.Background(), records, telemetry.ReasonSpoolCorrupt)
	d.corruptRep.report(fmt.Errorf("exporter: %d spooled records dropped (%s): %w", records, telemetry.ReasonSpoolCorrupt, err))
}
