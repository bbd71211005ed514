package pgauditexporter

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

// defaultCheckpointInterval is how often the stream's head is signed when
// signing_key_file or anchor_file is set.
const defaultCheckpointInterval = time.Minute

// sealing is the component's seal stream (see the README's "Tamper
// evidence"): every committed batch is sealed in a chain of its own, with a
// stream id chosen at start; with signing_key_file its head is signed at
// checkpoint_interval and at shutdown, into the checkpoint table and the
// anchor_file.
type sealing struct {
	stream uuid.UUID
	cp     *integrity.Checkpointer
	cancel context.CancelFunc
	done   chan struct{}
}

// sealingOptions returns the writer's sealing option and prepares the
// checkpointer; it fails when signing_key_file holds no Ed25519 key.
func (e *logsExporter) sealingOptions() ([]pgwriter.Option, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("stream id: %w", err)
	}
	e.seal = &sealing{stream: id}
	var anchors []integrity.Anchor
	if e.cfg.AnchorFile != "" {
		a := integrity.NewFileAnchor(e.cfg.AnchorFile)
		if err := a.Check(); err != nil {
			return nil, fmt.Errorf("anchor_file: %w", err)
		}
		anchors = append(anchors, a)
	}
	if e.cfg.SigningKeyFile != "" || len(anchors) > 0 {
		var k ed25519.PrivateKey
		if e.cfg.SigningKeyFile != "" {
			if k, err = integrity.LoadSigningKey(e.cfg.SigningKeyFile); err != nil {
				return nil, fmt.Errorf("signing_key_file: %w", err)
			}
		}
		e.seal.cp = integrity.NewCheckpointer(e.pool, e.cfg.Table, id, k, anchors...)
	}
	return []pgwriter.Option{pgwriter.WithSealing(id)}, nil
}

func (e *logsExporter) startCheckpoints() {
	if e.seal == nil || e.seal.cp == nil {
		return
	}
	interval := e.cfg.CheckpointInterval
	if interval <= 0 {
		interval = defaultCheckpointInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.seal.cancel, e.seal.done = cancel, make(chan struct{})
	go func() {
		defer close(e.seal.done)
		e.seal.cp.Run(ctx, interval, func(err error) { e.logger.Warn("checkpoint failed", zap.Error(err)) })
	}()
}

// closeSealing appends the stream's close seal and a last checkpoint; a
// failure is logged (the stream then shows as unclosed in verify, a
// warning).
func (e *logsExporter) closeSealing(ctx context.Context) {
	if e.seal == nil || e.writer == nil {
		return
	}
	defer func() { e.seal = nil }() // a second Shutdown does nothing
	if e.seal.cancel != nil {
		e.seal.cancel()
		<-e.seal.done
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, _, err := e.writer.CloseStream(ctx); err != nil {
		e.logger.Warn("could not close the seal stream", zap.String("stream", e.seal.stream.String()), zap.Error(err))
	}
	if e.seal.cp != nil {
		if _, err := e.seal.cp.Checkpoint(ctx); err != nil {
			e.logger.Warn("final checkpoint failed", zap.String("stream", e.seal.stream.String()), zap.Error(err))
		}
	}
}
