-- audit_log: one row per tool call that passed a gateway.
-- Every identifier that starts with audit_log is renamed when a custom table
-- name is configured (migrations.WithTable).
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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

-- request_id is unique: it makes every write idempotent (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX audit_log_request_id_key ON audit_log (request_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");
CREATE INDEX audit_log_client_subject_idx ON audit_log (client_subject);
CREATE INDEX audit_log_tool_name_idx ON audit_log (tool_name);

-- audit_log_rejects keeps, byte for byte, every row PostgreSQL still refused
-- after sanitising, with the error, so that nothing is lost silently.
CREATE TABLE audit_log_rejects (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  TEXT        NULL,
    error       TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
