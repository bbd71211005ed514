INSERT INTO audit_log (
    request_id, "timestamp", client_subject, client_role, tool_name,
    backend_name, request_args, response_status, error_message,
    latency_ms, trace_id, span_id, service_name, attributes
)
SELECT * FROM unnest(
    $1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::jsonb[], $8::text[], $9::text[],
    $10::bigint[], $11::text[], $12::text[], $13::text[], $14::jsonb[]
)
ON CONFLICT (request_id) DO NOTHING
