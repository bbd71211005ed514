package exporter

import (
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit/exporter/internal/auditrow"
)

// lazyRows is the pgwriter.Source of one Export: it maps the audit records
// of the batch in order, on first use.
type lazyRows struct {
	e       *Exporter
	records []sdklog.Record
	audit   []int // indexes of the audit events in records
	rows    []auditrow.Row
	rec     auditrow.Record
}

func (l *lazyRows) reset(e *Exporter, records []sdklog.Record) {
	l.e, l.records = e, records
	l.audit = l.audit[:0]
	for i := range records {
		if auditrow.IsAuditEvent(records[i].EventName()) {
			l.audit = append(l.audit, i)
		}
	}
	l.rows = l.rows[:0]
	e.mapper.Reset()
}

// release drops every reference to the SDK's records.
func (l *lazyRows) release() {
	l.records = nil
	l.rec = auditrow.Record{}
	clear(l.e.attrs)
}

func (l *lazyRows) Len() int { return len(l.audit) }

func (l *lazyRows) Row(i int) *auditrow.Row {
	for len(l.rows) <= i {
		l.e.attrs = l.e.attrs[:0]
		l.e.record(&l.records[l.audit[len(l.rows)]], &l.rec)
		l.rows = append(l.rows, l.e.mapper.Map(&l.rec))
	}
	return &l.rows[i]
}

// record copies what the mapping needs out of an SDK record into dst. The
// attributes go to one scratch slice: Map consumes them before the next.
func (e *Exporter) record(r *sdklog.Record, dst *auditrow.Record) {
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		e.attrs = append(e.attrs, kv)
		return true
	})
	*dst = auditrow.Record{
		Timestamp:         r.Timestamp(),
		ObservedTimestamp: r.ObservedTimestamp(),
		TraceID:           r.TraceID(),
		SpanID:            r.SpanID(),
		EventName:         r.EventName(),
		ServiceName:       e.serviceName(r.Resource()),
		Body:              r.Body(),
		Attributes:        e.attrs,
	}
}

func (e *Exporter) serviceName(res *resource.Resource) string {
	if res == nil {
		return ""
	}
	if res != e.res {
		e.res, e.svc = res, ""
		if v, ok := res.Set().Value("service.name"); ok {
			e.svc = v.Emit()
		}
	}
	return e.svc
}
