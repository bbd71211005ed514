INSERT INTO audit_log_rejects (request_id, error, payload) VALUES ($1, $2, $3)
