DROP FUNCTION IF EXISTS audit_log_drop_detached(), audit_log_detach_partition(text);
