package auditquery

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The row encoders below append JSON by hand: an export writes millions of
// rows, and encoding/json's reflection plus its re-validation of every
// json.RawMessage cost more than the database does. The JSON columns are
// copied as PostgreSQL returns them (jsonb text is valid JSON); every string
// goes through appendString, which TestAppendString checks against
// encoding/json.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, U+2028 and U+2029 escaped (for JavaScript), invalid
// UTF-8 replaced by U+FFFD, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendNullString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

func appendRaw(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// AppendJSON appends r's JSON object (the same document json.Marshal(r)
// produces, keys in column order) to dst.
func (r *Row) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, r.ID, 10)
	dst = append(dst, `,"request_id":`...)
	dst = appendString(dst, r.RequestID)
	dst = append(dst, `,"timestamp":`...)
	dst = appendTime(dst, r.Timestamp)
	dst = append(dst, `,"client_subject":`...)
	dst = appendString(dst, r.Subject)
	dst = append(dst, `,"client_role":`...)
	dst = appendString(dst, r.Role)
	dst = append(dst, `,"tool_name":`...)
	dst = appendString(dst, r.Tool)
	dst = append(dst, `,"backend_name":`...)
	dst = appendString(dst, r.Backend)
	dst = append(dst, `,"request_args":`...)
	dst = appendRaw(dst, r.Args)
	dst = append(dst, `,"response_status":`...)
	dst = appendString(dst, r.Status)
	dst = append(dst, `,"error_message":`...)
	dst = appendNullString(dst, r.ErrorMessage)
	dst = append(dst, `,"latency_ms":`...)
	dst = strconv.AppendInt(dst, r.LatencyMS, 10)
	dst = append(dst, `,"trace_id":`...)
	dst = appendNullString(dst, r.TraceID)
	dst = append(dst, `,"span_id":`...)
	dst = appendNullString(dst, r.SpanID)
	dst = append(dst, `,"service_name":`...)
	dst = appendNullString(dst, r.ServiceName)
	dst = append(dst, `,"attributes":`...)
	dst = appendRaw(dst, r.Attributes)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, r.CreatedAt)
	return append(dst, '}')
}

// AppendOCSF appends the JSON of r.OCSF(productVersion, table) to dst,
// without reflection (the same document json.Marshal produces).
func (r *Row) AppendOCSF(dst []byte, productVersion, table string) []byte {
	ev := r.OCSF(productVersion, table)
	o := func(key string) { dst = append(dst, ',', '"'); dst = append(dst, key...); dst = append(dst, '"', ':') }
	i := func(key string, v int64) { o(key); dst = strconv.AppendInt(dst, v, 10) }
	s := func(key, v string) { o(key); dst = appendString(dst, v) }
	dst = append(dst, `{"activity_id":`...)
	dst = strconv.AppendInt(dst, int64(ev.ActivityID), 10)
	s("activity_name", ev.ActivityName)
	i("category_uid", int64(ev.CategoryUID))
	s("category_name", ev.CategoryName)
	i("class_uid", int64(ev.ClassUID))
	s("class_name", ev.ClassName)
	i("type_uid", int64(ev.TypeUID))
	s("type_name", ev.TypeName)
	i("severity_id", int64(ev.SeverityID))
	s("severity", ev.Severity)
	i("time", ev.Time)
	i("start_time", ev.StartTime)
	i("end_time", ev.EndTime)
	i("duration", ev.Duration)
	i("status_id", int64(ev.StatusID))
	s("status", ev.Status)
	s("status_code", ev.StatusCode)
	if ev.StatusDetail != "" {
		s("status_detail", ev.StatusDetail)
	}
	o("actor")
	dst = append(dst, `{"user":{"uid":`...)
	dst = appendString(dst, ev.Actor.User.UID)
	s("name", ev.Actor.User.Name)
	if len(ev.Actor.User.Groups) > 0 {
		o("groups")
		dst = append(dst, '[')
		for k, g := range ev.Actor.User.Groups {
			if k > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, g.Name)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	if ev.Actor.Session != nil {
		o("session")
		dst = append(dst, `{"uid":`...)
		dst = appendString(dst, ev.Actor.Session.UID)
		dst = append(dst, '}')
	}
	dst = append(dst, '}')
	o("api")
	dst = append(dst, `{"operation":`...)
	dst = appendString(dst, ev.API.Operation)
	o("service")
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, ev.API.Service.Name)
	dst = append(dst, '}')
	o("request")
	dst = append(dst, `{"uid":`...)
	dst = appendString(dst, ev.API.Request.UID)
	if len(ev.API.Request.Data) > 0 {
		o("data")
		dst = append(dst, ev.API.Request.Data...)
	}
	dst = append(dst, '}')
	o("response")
	dst = append(dst, '{')
	sep := false
	field := func(key string) {
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, key...)
		dst = append(dst, '"', ':')
	}
	if ev.API.Response.Code != nil {
		field("code")
		dst = strconv.AppendInt(dst, int64(*ev.API.Response.Code), 10)
	}
	if ev.API.Response.Error != "" {
		field("error")
		dst = appendString(dst, ev.API.Response.Error)
	}
	if ev.API.Response.Message != "" {
		field("message")
		dst = appendString(dst, ev.API.Response.Message)
	}
	dst = append(dst, '}', '}')
	endpoint := func(e ocsfEndpoint) {
		dst = append(dst, '{')
		sep = false
		if e.IP != "" {
			field("ip")
			dst = appendString(dst, e.IP)
		}
		if e.Port != 0 {
			field("port")
			dst = strconv.AppendInt(dst, int64(e.Port), 10)
		}
		if e.SvcName != "" {
			field("svc_name")
			dst = appendString(dst, e.SvcName)
		}
		dst = append(dst, '}')
	}
	o("src_endpoint")
	endpoint(ev.SrcEndpoint)
	if ev.DstEndpoint != nil {
		o("dst_endpoint")
		endpoint(*ev.DstEndpoint)
	}
	if len(ev.Resources) > 0 {
		o("resources")
		dst = append(dst, '[')
		for k, res := range ev.Resources {
			if k > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, res.Name)
			s("type", res.Type)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	o("metadata")
	dst = append(dst, `{"version":`...)
	dst = appendString(dst, ev.Metadata.Version)
	o("product")
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, ev.Metadata.Product.Name)
	s("vendor_name", ev.Metadata.Product.VendorName)
	if ev.Metadata.Product.Version != "" {
		s("version", ev.Metadata.Product.Version)
	}
	dst = append(dst, '}')
	s("uid", ev.Metadata.UID)
	if ev.Metadata.CorrelationUID != "" {
		s("correlation_uid", ev.Metadata.CorrelationUID)
	}
	i("logged_time", ev.Metadata.LoggedTime)
	s("log_name", ev.Metadata.LogName)
	dst = append(dst, '}')
	if len(ev.Unmapped) > 0 {
		o("unmapped")
		dst = append(dst, ev.Unmapped...)
	}
	return append(dst, '}')
}
