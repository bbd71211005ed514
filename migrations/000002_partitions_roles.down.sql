-- Back to the v1 schema: one plain table, unique by request_id. Every row is
-- copied back; if two rows share a request_id (possible in v2, where the key
-- is (request_id, "timestamp")), building the v1 unique index fails and the
-- whole down migration rolls back, leaving v2 as it was.
-- The roles otelaudit_writer and otelaudit_reader are cluster-global and may
-- serve other databases: they are left in place (DROP ROLE them by hand once
-- no database uses them).
CREATE TABLE audit_log_v1 (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    request_id      UUID        NOT NULL,
    "timestamp"     TIMESTAMPTZ NOT NULL,
    client_subject  TEXT        NOT NULL,
    client_role     TEXT        NOT NULL,
    tool_name       TEXT        NOT NULL,
    backend_name    TEXT        NOT NULL,
    request_args    JSONB       NULL,
    response_status TEXT        NOT NULL,
    error_message   TEXT        NULL,
    latency_ms      BIGINT      NOT NULL,
    trace_id        TEXT        NULL,
    span_id         TEXT        NULL,
    service_name    TEXT        NULL,
    attributes      JSONB       NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO audit_log_v1 (id, request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
                          request_args, response_status, error_message, latency_ms, trace_id, span_id,
                          service_name, attributes, created_at)
OVERRIDING SYSTEM VALUE
SELECT id, request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
       request_args, response_status, error_message, latency_ms, trace_id, span_id,
       service_name, attributes, created_at
FROM audit_log;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('audit_log_v1', 'id'),
                         COALESCE((SELECT max(id) FROM audit_log_v1), 0) + 1, false);

DROP TABLE audit_log;
DROP FUNCTION audit_log_trim_default(timestamptz), audit_log_begin_trim(timestamptz), audit_log_drop_partition(text), audit_log_begin_drop(text),
    audit_log_may_drop(timestamptz), audit_log_ensure_partitions(timestamptz, timestamptz), audit_log_partitions();
DROP TABLE audit_log_partitioning;
REVOKE ALL ON audit_log_rejects FROM otelaudit_writer, otelaudit_reader;

ALTER TABLE audit_log_v1 RENAME TO audit_log;
ALTER SEQUENCE audit_log_v1_id_seq RENAME TO audit_log_id_seq;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);
CREATE UNIQUE INDEX audit_log_request_id_key ON audit_log (request_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");
CREATE INDEX audit_log_client_subject_idx ON audit_log (client_subject);
CREATE INDEX audit_log_tool_name_idx ON audit_log (tool_name);
