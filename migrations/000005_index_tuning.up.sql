-- Index tuning on schema v2, measured side by side with v4 on the same rows
-- (BENCHMARKS.md, "Schema v5 indexes"):
--
--   * ("timestamp", tool_name) replaces both the BRIN on "timestamp" and
--     (tool_name, "timestamp"). Rows arrive in time order, so the B-tree is
--     filled at its right edge (no random page splits) and costs about what
--     the tool index it replaces cost; it gives the time windows an ordered
--     index (no BRIN ranges left unsummarized until the next VACUUM), answers
--     "calls per tool over a time range" from the index alone (index-only
--     scan), and a tool's calls in a time range — exact name or glob — from
--     the index entries of that range.
--   * A partial (response_status, "timestamp") index over the calls that
--     did not succeed replaces the full index on response_status: a status's
--     calls over a time range (errors in the last hour, denied calls in a
--     day) are read from a few percent of the rows, counts without touching
--     the heap. Queries for status 'ok' (most rows) were never helped by an
--     index.
--
-- Plain CREATE INDEX (not CONCURRENTLY): a migration runs in one
-- transaction. On a large table it holds the table's lock while the two
-- indexes are built in every partition; writers wait (they are not refused).
DROP INDEX audit_log_time_brin, audit_log_tool_time_idx, audit_log_status_idx;
CREATE INDEX audit_log_time_tool_idx ON audit_log ("timestamp", tool_name);
CREATE INDEX audit_log_status_time_idx ON audit_log (response_status, "timestamp") WHERE response_status <> 'ok';
