package integrity

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
)

// CheckpointEventName is the event name of the OpenTelemetry log records
// a [LogAnchor] emits, so that a pipeline can route checkpoints to another
// backend than the audit rows.
const CheckpointEventName = "otelaudit.checkpoint"

// Checkpointer signs the head of one stream and stores the checkpoint in
// the database and in every anchor. It is safe for concurrent use.
type Checkpointer struct {
	db      DB
	tables  Tables
	stream  uuid.UUID
	key     ed25519.PrivateKey
	anchors []Anchor

	mu      sync.Mutex
	lastSeq int64
}

// NewCheckpointer returns a Checkpointer for stream of the audit table
// named table. With a nil key the checkpoints are unsigned: they are not
// stored in the database (an unsigned statement there proves nothing) but
// still go to the anchors, which then catch truncation and rollback by
// hash alone.
func NewCheckpointer(db DB, table string, stream uuid.UUID, key ed25519.PrivateKey, anchors ...Anchor) *Checkpointer {
	return &Checkpointer{db: db, tables: TablesFor(table), stream: stream, key: key, anchors: anchors}
}

// Checkpoint signs the stream's current head, when it moved since the last
// checkpoint, and stores it. It returns the checkpoint, or nil when there
// was nothing new. Every destination is tried; the error joins their
// failures.
func (c *Checkpointer) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, hash, kind, ok, err := ReadHead(ctx, c.db, c.tables, c.stream)
	if err != nil {
		return nil, err
	}
	if !ok || seq == c.lastSeq {
		return nil, nil
	}
	cp := &Checkpoint{StreamID: c.stream, Seq: seq, SealHash: hash, Closed: kind == KindClose}
	if c.key != nil {
		cp.Sign(c.key, time.Now())
	} else {
		cp.SignedAt = CanonicalTime(time.Now())
	}
	var errs []error
	if c.key != nil {
		if err := InsertCheckpoint(ctx, c.db, c.tables, cp); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range c.anchors {
		if err := a.Append(ctx, c.tables.Name(), cp); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) < len(c.anchors)+boolInt(c.key != nil) {
		c.lastSeq = seq // stored somewhere: do not sign the same head again
	}
	return cp, errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Run calls Checkpoint every interval until ctx is done, passing errors to
// onError.
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil && onError != nil {
				onError(fmt.Errorf("integrity: checkpoint stream %s: %w", c.stream, err))
			}
		}
	}
}

// LogAnchor emits each checkpoint as an OpenTelemetry log record with the
// event name [CheckpointEventName], to be routed (by event name) to a
// backend the database administrator does not control.
type LogAnchor struct {
	// Logger emits the records.
	Logger log.Logger
}

// Append emits c.
func (a LogAnchor) Append(ctx context.Context, table string, c *Checkpoint) error {
	var r log.Record
	r.SetEventName(CheckpointEventName)
	r.SetTimestamp(c.SignedAt)
	r.SetSeverity(log.SeverityInfo)
	r.SetBody(attribute.StringValue(fmt.Sprintf("otelaudit checkpoint: stream %s reached seal %d", c.StreamID, c.Seq)))
	r.AddAttributes(
		attribute.String("otelaudit.checkpoint.table", table),
		attribute.String("audit.sequence.stream_id", c.StreamID.String()),
		attribute.Int64("audit.sequence.number", c.Seq),
		attribute.String("otelaudit.checkpoint.seal_hash", hex.EncodeToString(c.SealHash[:])),
		attribute.Bool("audit.sequence.end", c.Closed),
		attribute.String("audit.integrity.signer", c.KeyID),
		attribute.String("audit.integrity.value", base64.StdEncoding.EncodeToString(c.Signature)),
		attribute.String("audit.integrity.canonicalization", "jcs"),
		attribute.String("otelaudit.checkpoint.signed_at", c.SignedAt.UTC().Format(time.RFC3339Nano)),
	)
	a.Logger.Emit(ctx, r)
	return nil
}
