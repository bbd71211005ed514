package exporter

import (
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
)

// mapping is the scratch space of one Export: the mapper (whose arena holds
// the rows' JSON), the rows and the attributes of the record being mapped.
type mapping struct {
	mapper auditrow.Mapper
	rows   []auditrow.Row
	attrs  []attribute.KeyValue
	res    *resource.Resource
	svc    string
}

// mapRecords maps the audit events of records to rows and returns them and
// the number of records skipped. The rows are valid until the next call.
func (m *mapping) mapRecords(records []sdklog.Record) ([]auditrow.Row, int) {
	m.mapper.Reset()
	m.rows = m.rows[:0]
	for i := range records {
		r := &records[i]
		if !auditrow.IsAuditEvent(r.EventName()) {
			continue
		}
		m.attrs = m.attrs[:0]
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			m.attrs = append(m.attrs, kv)
			return true
		})
		rec := auditrow.Record{
			Timestamp:         r.Timestamp(),
			ObservedTimestamp: r.ObservedTimestamp(),
			TraceID:           r.TraceID(),
			SpanID:            r.SpanID(),
			EventName:         r.EventName(),
			ServiceName:       m.serviceName(r.Resource()),
			Body:              r.Body(),
			Attributes:        m.attrs,
		}
		m.rows = append(m.rows, m.mapper.Map(&rec))
	}
	return m.rows, len(records) - len(m.rows)
}

// release drops every reference into the SDK's records.
func (m *mapping) release() {
	clear(m.rows)
	clear(m.attrs)
	m.res, m.svc = nil, ""
}

func (m *mapping) serviceName(res *resource.Resource) string {
	if res == nil {
		return ""
	}
	if res != m.res {
		m.res, m.svc = res, ""
		if v, ok := res.Set().Value("service.name"); ok {
			m.svc = v.String()
		}
	}
	return m.svc
}
