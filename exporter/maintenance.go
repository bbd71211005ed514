package exporter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
)

// task is periodic database housekeeping the exporter runs in the
// background while it is open: partition maintenance and retention are
// added as tasks by their options (for example a WithRetention option
// appends a task that calls the migrations package's partition functions).
// A task runs once at start and then every interval, never twice at once;
// its errors go to otel.Handle and it is tried again at the next interval.
type task struct {
	name     string
	interval time.Duration
	run      func(ctx context.Context, pool *pgxpool.Pool) error
}

// maintenance runs the tasks, one goroutine each, until stop.
type maintenance struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startMaintenance(pool *pgxpool.Pool, tasks []task) *maintenance {
	ctx, cancel := context.WithCancel(context.Background())
	m := &maintenance{cancel: cancel}
	for _, t := range tasks {
		m.wg.Go(func() {
			tick := time.NewTicker(t.interval)
			defer tick.Stop()
			for {
				if err := t.run(ctx, pool); err != nil && ctx.Err() == nil {
					otel.Handle(fmt.Errorf("exporter: %s: %w", t.name, err))
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	return m
}

// stop ends the tasks and waits for a running one to return.
func (m *maintenance) stop() {
	m.cancel()
	m.wg.Wait()
}
