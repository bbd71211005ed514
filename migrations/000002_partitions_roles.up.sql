-- Schema v2: audit_log becomes a table range-partitioned by "timestamp"
-- (the call's start time), with indexes for the questions auditors ask,
-- partition maintenance functions the writer may call without DDL rights,
-- and two least-privilege roles. Every row of a v1 table is copied into the
-- new table in place, in this one transaction: a failure leaves v1 as it was.
--
-- Every identifier that starts with audit_log is renamed when a custom table
-- name is configured (migrations.WithTable), string literals included, so the
-- functions below work on the renamed table.

-- Roles are cluster-global and shared by every database on the server (and
-- by every table name): create them once, never drop them here. NOLOGIN
-- group roles: grant them to the login users that run the exporter or the
-- auditors' tools (GRANT otelaudit_writer TO gateway_user).
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['otelaudit_writer', 'otelaudit_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                -- Another database's migration created it at the same moment.
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'migrations: role % does not exist and this user may not create it', r
                        USING HINT = format('run the migration once as a user with CREATEROLE, or create it first: CREATE ROLE %I NOLOGIN', r);
            END;
        END IF;
    END LOOP;
END
$roles$;

-- The v1 table steps aside; its rows are copied below and it is dropped.
ALTER TABLE audit_log RENAME TO audit_log_v1;
ALTER TABLE audit_log_v1 DROP CONSTRAINT audit_log_pkey;
DROP INDEX audit_log_request_id_key, audit_log_timestamp_idx, audit_log_client_subject_idx, audit_log_tool_name_idx;
ALTER SEQUENCE audit_log_id_seq RENAME TO audit_log_v1_id_seq;

-- Same columns as v1 (the column table in internal/auditrow must match).
CREATE TABLE audit_log (
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
) PARTITION BY RANGE ("timestamp");

-- Rows whose timestamp has no partition (a skewed clock: 1970, 2100; a
-- replay from before the first partition) land here instead of failing.
-- audit_log_ensure_partitions moves the default's rows of a range into the
-- range's partition before attaching it, so creating the next partition
-- never fails because of them.
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- How partitions are cut; one row, owned by the migration's user. Change
-- width to partition by another interval from the next new partition on
-- (existing partitions keep theirs); min_retention is the youngest data a
-- user who is not the table's owner (the writer) may drop.
CREATE TABLE audit_log_partitioning (
    singleton     BOOLEAN  PRIMARY KEY DEFAULT true CHECK (singleton),
    width         INTERVAL NOT NULL DEFAULT '1 day' CHECK (width >= '1 hour' AND width <= '31 days'),
    min_retention INTERVAL NOT NULL DEFAULT '7 days' CHECK (min_retention >= '0')
);
INSERT INTO audit_log_partitioning DEFAULT VALUES;

-- audit_log_partitions lists the partitions with their bounds ([lo, hi) in
-- UTC; NULL bounds for the default partition).
CREATE FUNCTION audit_log_partitions()
RETURNS TABLE (name text, lo timestamptz, hi timestamptz, is_default boolean)
LANGUAGE sql STABLE
SET timezone = 'UTC'
AS $fn$
    SELECT c.relname::text,
           (regexp_match(b.expr, $re$FROM \('([^']+)'\)$re$))[1]::timestamptz,
           (regexp_match(b.expr, $re$TO \('([^']+)'\)$re$))[1]::timestamptz,
           b.expr = 'DEFAULT'
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS expr) b
    WHERE i.inhparent = 'audit_log'::regclass
    ORDER BY 3 NULLS FIRST
$fn$;

-- audit_log_ensure_partitions creates the partitions that cover
-- [p_from, p_to), cut by audit_log_partitioning.width on boundaries aligned
-- to 2000-01-01 00:00 UTC, and returns the names it created. A range that
-- overlaps an existing partition is skipped (its rows land in the default
-- partition). Rows of the range that already sit in the default partition
-- are moved into the new partition first, with their ids and values
-- unchanged. SECURITY DEFINER: the partitions belong to the table's owner,
-- and the writer role needs no DDL right to call it. An advisory lock per
-- table serialises concurrent callers (many writers, the migration, the
-- CLI); ATTACH PARTITION does not block inserts into the other partitions.
CREATE FUNCTION audit_log_ensure_partitions(p_from timestamptz, p_to timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_width interval;
    v_lo    timestamptz;
    v_hi    timestamptz;
    v_name  text;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from THEN
        RAISE EXCEPTION 'audit_log_ensure_partitions: bad range [%, %)', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_to - p_from > interval '1000 days' THEN
        RAISE EXCEPTION 'audit_log_ensure_partitions: range [%, %) is longer than 1000 days', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('otelaudit.partitions'), pg_catalog.hashtext('audit_log'));
    SELECT width INTO STRICT v_width FROM audit_log_partitioning;
    v_lo := pg_catalog.date_bin(v_width, p_from, timestamptz '2000-01-01 00:00:00+00');
    WHILE v_lo < p_to LOOP
        v_hi := v_lo + v_width;
        IF NOT EXISTS (SELECT FROM audit_log_partitions() p WHERE NOT p.is_default AND p.lo < v_hi AND p.hi > v_lo) THEN
            v_name := 'audit_log_p' || to_char(v_lo, CASE WHEN v_width >= interval '1 day' AND pg_catalog.date_trunc('day', v_lo) = v_lo
                                                          THEN 'YYYYMMDD' ELSE 'YYYYMMDD"t"HH24MI' END);
            EXECUTE format('CREATE TABLE %I (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', v_name);
            EXECUTE format('WITH moved AS (DELETE FROM audit_log_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', v_name) USING v_lo, v_hi;
            EXECUTE format('ALTER TABLE audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_lo, v_hi);
            RETURN NEXT v_name;
        END IF;
        v_lo := v_hi;
    END LOOP;
END
$fn$;

-- audit_log_may_drop raises unless the session's user may drop data older
-- than p_hi: the table's owner (or a member of its role) always, anyone else
-- only data older than audit_log_partitioning.min_retention.
CREATE FUNCTION audit_log_may_drop(p_hi timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
AS $fn$
DECLARE
    v_owner oid;
    v_floor interval;
BEGIN
    SELECT relowner INTO STRICT v_owner FROM pg_catalog.pg_class WHERE oid = 'audit_log'::regclass;
    SELECT min_retention INTO STRICT v_floor FROM audit_log_partitioning;
    IF p_hi > now() - v_floor AND NOT pg_catalog.pg_has_role(session_user, v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'audit_log: refusing to drop rows younger than min_retention (%): only the owner of audit_log may', v_floor
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'keep the data longer, or run retention as the owner, or lower audit_log_partitioning.min_retention as the owner';
    END IF;
END
$fn$;

-- audit_log_begin_drop validates that p_name is a partition of audit_log the
-- caller may drop and locks the table for the drop, before the retention
-- hook runs in the same transaction: no row can enter the partition between
-- the hook and the drop. It returns the partition's bounds.
CREATE FUNCTION audit_log_begin_drop(p_name text, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('otelaudit.partitions'), pg_catalog.hashtext('audit_log'));
    SELECT p.lo, p.hi INTO lo, hi FROM audit_log_partitions() p WHERE p.name = p_name AND NOT p.is_default;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit_log: % is not a partition of audit_log', p_name USING ERRCODE = 'undefined_table';
    END IF;
    PERFORM audit_log_may_drop(hi);
    LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;
END
$fn$;

-- audit_log_drop_partition drops a partition that audit_log_begin_drop
-- validated: O(1) in its size, no dead rows left behind.
CREATE FUNCTION audit_log_drop_partition(p_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_lo timestamptz;
    v_hi timestamptz;
BEGIN
    SELECT b.lo, b.hi INTO v_lo, v_hi FROM audit_log_begin_drop(p_name) b;
    EXECUTE format('DROP TABLE %I', p_name);
END
$fn$;

-- audit_log_begin_trim validates and locks like audit_log_begin_drop, for
-- the default partition's rows older than p_before, and counts them.
CREATE FUNCTION audit_log_begin_trim(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_n bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('otelaudit.partitions'), pg_catalog.hashtext('audit_log'));
    PERFORM audit_log_may_drop(p_before);
    SELECT count(*) INTO v_n FROM audit_log_default WHERE "timestamp" < p_before;
    IF v_n > 0 THEN
        LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;
    END IF;
    RETURN v_n;
END
$fn$;

-- audit_log_trim_default deletes the default partition's rows older than
-- p_before (skewed clocks, late replays) and returns how many. The default
-- partition holds few rows, so a DELETE is cheap there.
CREATE FUNCTION audit_log_trim_default(p_before timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_n bigint;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('otelaudit.partitions'), pg_catalog.hashtext('audit_log'));
    PERFORM audit_log_begin_trim(p_before);
    DELETE FROM audit_log_default WHERE "timestamp" < p_before;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$fn$;

-- SECURITY DEFINER functions run with a fixed search_path: this schema, then
-- pg_temp, so that no object a caller creates can stand in for ours.
DO $path$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['audit_log_partitions()', 'audit_log_ensure_partitions(timestamptz, timestamptz)',
                             'audit_log_may_drop(timestamptz)', 'audit_log_begin_drop(text)',
                             'audit_log_drop_partition(text)', 'audit_log_begin_trim(timestamptz)',
                             'audit_log_trim_default(timestamptz)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END
$path$;

-- Partitions for every day the v1 rows cover (within the last 1000 days;
-- older or future rows go to the default partition) and the days ahead.
DO $fill$
DECLARE
    d timestamptz;
BEGIN
    FOR d IN SELECT DISTINCT pg_catalog.date_bin('1 day', "timestamp", timestamptz '2000-01-01 00:00:00+00')
             FROM audit_log_v1
             WHERE "timestamp" >= now() - interval '1000 days' AND "timestamp" < now() + interval '3 days' LOOP
        PERFORM audit_log_ensure_partitions(d, d + interval '1 day');
    END LOOP;
    PERFORM audit_log_ensure_partitions(now() - interval '1 day', now() + interval '3 days');
END
$fill$;

-- Every v1 row, with its id, before the indexes exist (bulk index builds are
-- faster than row-by-row maintenance).
INSERT INTO audit_log (id, request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
                       request_args, response_status, error_message, latency_ms, trace_id, span_id,
                       service_name, attributes, created_at)
OVERRIDING SYSTEM VALUE
SELECT id, request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
       request_args, response_status, error_message, latency_ms, trace_id, span_id,
       service_name, attributes, created_at
FROM audit_log_v1;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('audit_log', 'id'),
                         COALESCE((SELECT max(id) FROM audit_log_v1), 0) + 1, false);
DROP TABLE audit_log_v1;

-- Keys. Unique indexes of a partitioned table must contain the partition
-- key, so the idempotency key is (request_id, "timestamp") instead of
-- request_id alone. That is still enough: a retried or replayed record keeps
-- the timestamp it was made with (the call's start, carried in the record,
-- the spool and OTLP), so its copy has the same key, lands in the same
-- partition and is ignored there (INSERT ... ON CONFLICT DO NOTHING).
-- request_id is a UUIDv7 made once per call; two different calls never
-- share it.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id, "timestamp");
ALTER TABLE audit_log ADD CONSTRAINT audit_log_request_key UNIQUE (request_id, "timestamp");

-- The auditors' questions, each answered from an index inside every
-- partition (and pruned to the partitions of a time range):
--   a trace's audit rows, a session's calls: equality only, so hash indexes
--   (a 4-byte hash per row instead of the whole 32- or 36-byte key);
--   a subject's or a tool's calls over time, newest first: (key, time);
--   calls by status over a time range: status alone (btree deduplication
--   makes it a few bytes a row) combined with the BRIN on time;
--   any time range: BRIN, the rows arrive in time order.
-- The session id stays in attributes; queries must use exactly the
-- expression (attributes->>'mcp.session.id').
CREATE INDEX audit_log_trace_id_idx ON audit_log USING hash (trace_id);
CREATE INDEX audit_log_session_idx ON audit_log USING hash ((attributes->>'mcp.session.id'));
CREATE INDEX audit_log_subject_time_idx ON audit_log (client_subject, "timestamp");
CREATE INDEX audit_log_tool_time_idx ON audit_log (tool_name, "timestamp");
CREATE INDEX audit_log_status_idx ON audit_log (response_status);
CREATE INDEX audit_log_time_brin ON audit_log USING brin ("timestamp");

-- Least privilege. The writer may only add rows (and cut partitions through
-- the functions above); the reader may only read. Neither may UPDATE,
-- DELETE or TRUNCATE; the migration's user owns everything.
REVOKE ALL ON audit_log, audit_log_default, audit_log_rejects, audit_log_partitioning FROM PUBLIC;
GRANT INSERT ON audit_log, audit_log_rejects TO otelaudit_writer;
GRANT SELECT ON audit_log, audit_log_rejects, audit_log_partitioning TO otelaudit_reader;
REVOKE ALL ON FUNCTION audit_log_partitions(), audit_log_ensure_partitions(timestamptz, timestamptz),
    audit_log_may_drop(timestamptz), audit_log_begin_drop(text), audit_log_drop_partition(text),
    audit_log_begin_trim(timestamptz), audit_log_trim_default(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_partitions(), audit_log_ensure_partitions(timestamptz, timestamptz),
    audit_log_begin_drop(text), audit_log_drop_partition(text), audit_log_begin_trim(timestamptz),
    audit_log_trim_default(timestamptz) TO otelaudit_writer;
GRANT EXECUTE ON FUNCTION audit_log_partitions() TO otelaudit_reader;
