-- Tamper evidence (see README "Tamper evidence"): every row carries the
-- hash of its canonical content and the seal that covers it; each writer
-- stream chains its seals; signed checkpoints of the chain heads are kept
-- here and in anchors outside the database. Nothing here is ever updated
-- or deleted: triggers refuse UPDATE, DELETE and TRUNCATE on these tables
-- (retention drops whole partitions of audit_log instead).
--
-- Every identifier that starts with audit_log is renamed with the table
-- (migrations.WithTable).

-- Columns are added without defaults: a catalogue change only, whatever the
-- table's size; rows written before this migration keep NULL ("not sealed").
ALTER TABLE audit_log
    ADD COLUMN row_hash    BYTEA   NULL,
    ADD COLUMN seal_stream UUID    NULL,
    ADD COLUMN seal_seq    BIGINT  NULL,
    ADD COLUMN seal_pos    INTEGER NULL;

-- One row per seal: a committed batch, a counted gap, a stream's close, or
-- a retention drop. seal_hash is SHA-256 over the seal's canonical document
-- (which includes prev_hash); see internal/integrity.
CREATE TABLE audit_log_seals (
    stream_id  UUID        NOT NULL,
    seq        BIGINT      NOT NULL CHECK (seq > 0),
    kind       TEXT        NOT NULL CHECK (kind IN ('batch', 'gap', 'close', 'retention')),
    prev_hash  BYTEA       NOT NULL,
    batch_hash BYTEA       NULL,
    row_count  BIGINT      NOT NULL,
    first_ts   TIMESTAMPTZ NULL,
    last_ts    TIMESTAMPTZ NULL,
    reason     TEXT        NULL,
    sealed_at  TIMESTAMPTZ NOT NULL,
    seal_hash  BYTEA       NOT NULL,
    PRIMARY KEY (stream_id, seq)
);

-- Signed statements that a stream's chain reached seq with seal_hash. The
-- same checkpoints go to the external anchors, which are what catch a
-- truncated chain or a database restored from an older copy.
CREATE TABLE audit_log_checkpoints (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id  UUID        NOT NULL,
    seq        BIGINT      NOT NULL,
    seal_hash  BYTEA       NOT NULL,
    closed     BOOLEAN     NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL,
    key_id     TEXT        NOT NULL,
    signature  BYTEA       NOT NULL
);
CREATE INDEX audit_log_checkpoints_stream_idx ON audit_log_checkpoints (stream_id, seq);

-- Retention marks: before retention drops a partition (or trims the
-- default partition), it records here, for each stream with batch seals in
-- the range, the last such seal and its hash. Verify then expects those
-- seals' rows in the range to be gone and checks the rest of the chain as
-- usual (seals are never dropped: about 150 bytes a committed batch).
CREATE TABLE audit_log_retention (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition_name TEXT        NOT NULL,
    range_from     TIMESTAMPTZ NULL,
    range_to       TIMESTAMPTZ NOT NULL,
    stream_id      UUID        NOT NULL,
    last_seq       BIGINT      NOT NULL,
    last_seal_hash BYTEA       NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Append-only. To repair a mistake deliberately, the table owner (or a
-- superuser) disables the trigger for one transaction, and verify will then
-- report the change as tampering, which is what it is:
--   BEGIN;
--   ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
--   ... the repair ...
--   ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
--   COMMIT;
-- (a superuser can also SET session_replication_role = replica for a session).
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Partition maintenance (schema v2) moves rows out of the default
    -- partition into a new partition, ids and values unchanged, and trims
    -- the default partition's expired rows; those functions set this
    -- variable for their own duration only.
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log_default'
       AND current_setting('otelaudit.partition_maintenance', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'otelaudit: % on % refused: the audit trail is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'retention drops whole partitions; see the README section "Tamper evidence" for a deliberate repair';
END
$$;

-- Row triggers on a partitioned table are cloned to every partition, present
-- and future, so a DELETE aimed at a partition is refused too.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_seals_append_only BEFORE UPDATE OR DELETE ON audit_log_seals
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_seals_no_truncate BEFORE TRUNCATE ON audit_log_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_checkpoints_no_truncate BEFORE TRUNCATE ON audit_log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_retention_append_only BEFORE UPDATE OR DELETE ON audit_log_retention
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_retention_no_truncate BEFORE TRUNCATE ON audit_log_retention
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Schema v2's maintenance functions may move and trim the default
-- partition's rows (see audit_log_refuse_change).
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['audit_log_ensure_partitions(timestamptz, timestamptz)', 'audit_log_trim_default(timestamptz)'] LOOP
        IF to_regprocedure(f) IS NOT NULL THEN
            EXECUTE format('ALTER FUNCTION %s SET otelaudit.partition_maintenance = %L', f, 'on');
        END IF;
    END LOOP;
END
$$;

-- The writer and reader roles of schema v2, when they exist, get what
-- sealing and verifying need: INSERT and SELECT, never UPDATE or DELETE.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'otelaudit_writer') THEN
        GRANT SELECT, INSERT ON audit_log_seals, audit_log_checkpoints, audit_log_retention TO otelaudit_writer;
        -- A replayed batch's INSERT ... ON CONFLICT DO NOTHING RETURNING
        -- seal_pos tells the sealing step which rows it inserted.
        GRANT SELECT (seal_pos) ON audit_log TO otelaudit_writer;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'otelaudit_reader') THEN
        GRANT SELECT ON audit_log_seals, audit_log_checkpoints, audit_log_retention TO otelaudit_reader;
    END IF;
END
$$;
