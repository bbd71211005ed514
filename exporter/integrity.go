package exporter

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/pgwriter"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

// DefaultCheckpointInterval is how often a stream's head is signed when a
// signing key or an anchor is configured.
const DefaultCheckpointInterval = time.Minute

// integrityConfig holds the tamper-evidence options (see the README's
// "Tamper evidence").
type integrityConfig struct {
	noSealing bool
	stream    uuid.UUID
	key       ed25519.PrivateKey
	keyErr    error
	anchors   []integrity.Anchor
	interval  time.Duration
}

// WithSealing sets whether every committed batch is sealed in the
// exporter's chain (default true): each row gets its hash and seal, each
// batch a seal linked to the one before, in the transaction that writes
// it. Turning it off makes the trail unverifiable (verify reports rows
// written after sealing began without a seal as tampering).
func WithSealing(seal bool) Option {
	return optionFunc(func(c config) config { c.integrity.noSealing = !seal; return c })
}

// WithStreamID sets the id of the exporter's seal stream (default: a new
// random UUID at each New). Each running exporter needs its own.
func WithStreamID(id uuid.UUID) Option {
	return optionFunc(func(c config) config { c.integrity.stream = id; return c })
}

// WithSigningKey signs checkpoints of the stream's head with key (Ed25519),
// every [WithCheckpointInterval] and at Shutdown. Checkpoints are stored in
// the checkpoint table and in every anchor. Keep the key away from the
// database's administrators: whoever holds both can rewrite the trail.
func WithSigningKey(key ed25519.PrivateKey) Option {
	return optionFunc(func(c config) config { c.integrity.key, c.integrity.keyErr = key, nil; return c })
}

// WithSigningKeyFile is [WithSigningKey] with the key read from a file: PEM
// PKCS #8 (`openssl genpkey -algorithm ed25519`) or base64 of the 32-byte
// seed. New fails when the file cannot be read or holds no Ed25519 key.
func WithSigningKeyFile(path string) Option {
	return optionFunc(func(c config) config {
		c.integrity.key, c.integrity.keyErr = integrity.LoadSigningKey(path)
		return c
	})
}

// WithSigningKeyFromEnv is [WithSigningKey] with the key read from the
// environment variable name (PEM or base64, as [WithSigningKeyFile]). New
// fails when the variable is unset or holds no Ed25519 key.
func WithSigningKeyFromEnv(name string) Option {
	return optionFunc(func(c config) config {
		v, ok := os.LookupEnv(name)
		if !ok {
			c.integrity.key, c.integrity.keyErr = nil, fmt.Errorf("integrity: signing key variable %s is not set", name)
			return c
		}
		c.integrity.key, c.integrity.keyErr = integrity.ParseSigningKey([]byte(v))
		return c
	})
}

// WithAnchorFile appends every checkpoint to a JSON Lines file (created
// when missing, opened O_APPEND, synced per line), for `otelaudit verify
// --anchor`. Put it where the database's administrators cannot write: it
// is what catches a truncated trail or a database restored from an older
// copy. Without a signing key the lines are unsigned (hashes only).
func WithAnchorFile(path string) Option {
	return optionFunc(func(c config) config {
		c.integrity.anchors = append(c.integrity.anchors, integrity.NewFileAnchor(path))
		return c
	})
}

// WithCheckpointLogger also emits every checkpoint as an OpenTelemetry log
// record with the event name "otelaudit.checkpoint" through logger, so that
// a Collector can route checkpoints to another backend than the rows.
func WithCheckpointLogger(logger log.Logger) Option {
	return optionFunc(func(c config) config {
		c.integrity.anchors = append(c.integrity.anchors, integrity.LogAnchor{Logger: logger})
		return c
	})
}

// WithCheckpointInterval sets how often the stream's head is checkpointed
// (default [DefaultCheckpointInterval]); one more is made at Shutdown.
func WithCheckpointInterval(d time.Duration) Option {
	return optionFunc(func(c config) config { c.integrity.interval = d; return c })
}

// sealing is the exporter's stream: the writer's options, the
// checkpointer, and the close at Shutdown.
type sealing struct {
	cfg    integrityConfig
	stream uuid.UUID
	cp     *integrity.Checkpointer
	cancel context.CancelFunc
	wg     sync.WaitGroup
	writer *pgwriter.Writer
}

func newSealing(pool *pgxpool.Pool, c config) (*sealing, error) {
	ic := c.integrity
	if ic.keyErr != nil {
		return nil, fmt.Errorf("exporter: %w", ic.keyErr)
	}
	if err := integrity.CheckAnchors(ic.anchors...); err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	s := &sealing{cfg: ic, stream: ic.stream}
	if ic.noSealing {
		return s, nil
	}
	if s.stream == (uuid.UUID{}) {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("exporter: stream id: %w", err)
		}
		s.stream = id
	}
	if ic.key != nil || len(ic.anchors) > 0 {
		s.cp = integrity.NewCheckpointer(pool, c.table, s.stream, ic.key, ic.anchors...)
	}
	return s, nil
}

func (s *sealing) writerOptions() []pgwriter.Option {
	if s.cfg.noSealing {
		return nil
	}
	return []pgwriter.Option{pgwriter.WithSealing(s.stream)}
}

// start begins checkpointing at the interval.
func (s *sealing) start(w *pgwriter.Writer) {
	s.writer = w
	if s.cp == nil {
		return
	}
	interval := s.cfg.interval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() {
		s.cp.Run(ctx, interval, func(err error) { otel.Handle(fmt.Errorf("exporter: %w", err)) })
	})
}

// closeTimeout bounds the close seal and the last checkpoint at Shutdown.
const closeTimeout = 5 * time.Second

// close ends the stream: the close seal (with any gap still pending), then
// a last checkpoint over it. Called by Shutdown once no write is running.
// A failure (PostgreSQL away) goes to otel.Handle: the stream then shows as
// unclosed in verify, a warning, and Shutdown goes on.
func (s *sealing) close(ctx context.Context) {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	if s.writer == nil || s.cfg.noSealing {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if _, _, err := s.writer.CloseStream(ctx); err != nil {
		otel.Handle(fmt.Errorf("exporter: close seal stream %s: %w", s.stream, err))
	}
	if s.cp != nil {
		if _, err := s.cp.Checkpoint(ctx); err != nil {
			otel.Handle(fmt.Errorf("exporter: final checkpoint of stream %s: %w", s.stream, err))
		}
	}
}

// StreamID returns the id of the exporter's seal stream (the zero UUID
// with WithSealing(false)); `otelaudit verify --stream` takes it.
func (e *Exporter) StreamID() uuid.UUID { return e.sealing.stream }
