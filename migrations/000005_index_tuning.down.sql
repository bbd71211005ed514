DROP INDEX audit_log_time_tool_idx, audit_log_status_time_idx;
CREATE INDEX audit_log_tool_time_idx ON audit_log (tool_name, "timestamp");
CREATE INDEX audit_log_status_idx ON audit_log (response_status);
CREATE INDEX audit_log_time_brin ON audit_log USING brin ("timestamp");
