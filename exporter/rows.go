package exporter

import (
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// batch is the audit part of one Export, split into parts that are written
// concurrently (one part unless WithWriteConcurrency asks for more).
type batch struct {
	audit []int // indexes of the audit events in the records
	parts []lazyRows
	used  int // parts in use for the current batch
	all   []auditrow.Row
}

// minPartRows is the smallest part worth its own connection.
const minPartRows = 256

func newBatch(concurrency, maxArgsBytes int) batch {
	b := batch{parts: make([]lazyRows, max(concurrency, 1))}
	for i := range b.parts {
		b.parts[i].mapper.MaxArgsBytes = maxArgsBytes
	}
	return b
}

// reset takes the records of one Export and splits their audit events.
func (b *batch) reset(records []sdklog.Record) {
	b.audit = b.audit[:0]
	for i := range records {
		if auditrow.IsAuditEvent(records[i].EventName()) {
			b.audit = append(b.audit, i)
		}
	}
	n := len(b.audit)
	b.used = min(len(b.parts), max(n/minPartRows, 1))
	for i := range b.used {
		b.parts[i].reset(records, b.audit[i*n/b.used:(i+1)*n/b.used])
	}
}

// Len is the number of audit records in the batch.
func (b *batch) Len() int { return len(b.audit) }

// rows maps every record and returns all rows in order.
func (b *batch) rows() []auditrow.Row {
	if b.used == 1 {
		return b.parts[0].mapAll()
	}
	b.all = b.all[:0]
	for i := range b.used {
		b.all = append(b.all, b.parts[i].mapAll()...)
	}
	return b.all
}

// release drops every reference to the SDK's records.
func (b *batch) release() {
	for i := range b.used {
		b.parts[i].release()
	}
	clear(b.all)
}

// lazyRows is one part: it maps its records on first use (mapAll), once
// per batch however often the batch is written. Each part has its own
// mapper and scratch space, so parts can be written at once.
type lazyRows struct {
	records []sdklog.Record
	audit   []int
	rows    []auditrow.Row
	rec     auditrow.Record
	attrs   []attribute.KeyValue
	mapper  auditrow.Mapper
	res     *resource.Resource
	svc     string
}

func (l *lazyRows) reset(records []sdklog.Record, audit []int) {
	l.records, l.audit = records, audit
	l.rows = l.rows[:0]
	l.mapper.Reset()
}

func (l *lazyRows) release() {
	l.records, l.audit = nil, nil
	l.rec = auditrow.Record{}
	clear(l.attrs)
}

func (l *lazyRows) Len() int { return len(l.audit) }

func (l *lazyRows) Row(i int) *auditrow.Row {
	for len(l.rows) <= i {
		l.attrs = l.attrs[:0]
		l.record(&l.records[l.audit[len(l.rows)]])
		l.rows = append(l.rows, l.mapper.Map(&l.rec))
	}
	return &l.rows[i]
}

func (l *lazyRows) mapAll() []auditrow.Row {
	if n := l.Len(); n > 0 {
		l.Row(n - 1)
	}
	return l.rows
}

// record copies what the mapping needs out of an SDK record. The attributes
// go to one scratch slice: Map consumes them before the next record.
func (l *lazyRows) record(r *sdklog.Record) {
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		l.attrs = append(l.attrs, kv)
		return true
	})
	l.rec = auditrow.Record{
		Timestamp:         r.Timestamp(),
		ObservedTimestamp: r.ObservedTimestamp(),
		TraceID:           r.TraceID(),
		SpanID:            r.SpanID(),
		EventName:         r.EventName(),
		ServiceName:       l.serviceName(r.Resource()),
		Body:              r.Body(),
		Attributes:        l.attrs,
	}
}

func (l *lazyRows) serviceName(res *resource.Resource) string {
	if res == nil {
		return ""
	}
	if res != l.res {
		l.res, l.svc = res, ""
		if v, ok := res.Set().Value("service.name"); ok {
			l.svc = v.Emit()
		}
	}
	return l.svc
}
