package instrumentation

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit"
)

// The kept refusals are emitted only while the pipeline takes them: when it
// stops mid-drain (its queue is full), the rest stay kept instead of being
// pushed into a queue that drops them, and the next drain emits them.
func TestDrainStopsWhenThePipelineFills(t *testing.T) {
	var room atomic.Int64 // records the "queue" takes before Health fails
	var f *fixture
	health := HealthCheckerFunc(func(context.Context) error {
		if int64(len(f.rec.Records())) >= room.Load() {
			return errors.New("queue full")
		}
		return nil
	})
	f = newFixture(t, WithFailClosed(health))
	ctx := context.Background()
	for range 10 {
		if err := f.a.Allow(ctx); !errors.Is(err, ErrAuditUnavailable) {
			t.Fatalf("Allow = %v while unhealthy", err)
		}
		f.a.Record(ctx, Call{Tool: "refused", Err: ErrAuditUnavailable})
	}
	room.Store(4)
	if err := f.a.Allow(ctx); err != nil { // starts a drain
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(f.rec.Records()) == 4 })
	time.Sleep(50 * time.Millisecond)
	if n := len(f.rec.Records()); n != 4 {
		t.Fatalf("%d records emitted into a pipeline that takes 4", n)
	}
	room.Store(100)
	waitFor(t, func() bool { _ = f.a.Allow(ctx); return len(f.rec.Records()) == 10 })
	for _, r := range f.rec.Records() {
		if s := auditAttrs(r)[otelaudit.ResponseStatusKey].AsString(); s != string(otelaudit.StatusDenied) {
			t.Errorf("status %q, want denied", s)
		}
	}
}
