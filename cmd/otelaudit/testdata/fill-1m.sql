-- One million synthetic audit rows over the last 7 days, for make bench-export
-- and make bench-viewer-small (see mk/cli.mk and BENCHMARKS.md).
INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name, request_args, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes)
SELECT gen_random_uuid(), now() - make_interval(secs => (1000000 - g) * 0.6048), 'user' || (g % 50), 'analyst', 'tool_' || (g % 20), 'backend' || (g % 5),
  jsonb_build_object('query', 'search term ' || g, 'limit', g % 100, 'api_key', '[REDACTED]'),
  (ARRAY['ok','ok','ok','ok','ok','ok','ok','error','denied','timeout'])[1 + g % 10],
  CASE WHEN g % 10 >= 7 THEN 'backend failed: code ' || (g % 7) END, g % 500,
  md5(g::text), left(md5((g+1)::text), 16), 'gateway',
  jsonb_build_object('mcp.method.name', 'tools/call', 'mcp.session.id', 'sess-' || (g % 1000), 'jsonrpc.request.id', g::text, 'gen_ai.operation.name', 'execute_tool')
FROM generate_series(1, 1000000) g;
