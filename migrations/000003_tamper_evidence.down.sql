-- Removes tamper evidence: the seal and checkpoint tables, the append-only
-- triggers and the integrity columns (their values are lost).
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
DROP TABLE IF EXISTS audit_log_retention;
DROP TABLE IF EXISTS audit_log_checkpoints;
DROP TABLE IF EXISTS audit_log_seals;
DROP FUNCTION IF EXISTS audit_log_refuse_change();
ALTER TABLE audit_log
    DROP COLUMN IF EXISTS row_hash,
    DROP COLUMN IF EXISTS seal_stream,
    DROP COLUMN IF EXISTS seal_seq,
    DROP COLUMN IF EXISTS seal_pos;
