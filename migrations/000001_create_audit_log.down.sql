DROP TABLE IF EXISTS audit_log_rejects;
DROP TABLE IF EXISTS audit_log;
