-- Retention in two steps, so that writers wait only for the first: a
-- partition is detached (and renamed <table>_gone_p...) in the
-- transaction that records its retention seal and runs the caller's hook,
-- which commits in milliseconds whatever the partition's size; the detached
-- table's files are removed in a second transaction that locks no table
-- the writers use. (Dropping a partition in place holds the audit table's
-- ACCESS EXCLUSIVE lock while the commit unlinks its files: hundreds of
-- milliseconds for a 500 MB day.) See migrations.DropPartitions.

CREATE FUNCTION audit_log_detach_partition(p_name text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET timezone = 'UTC'
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_lo  timestamptz;
    v_hi  timestamptz;
    v_new text;
BEGIN
    SELECT b.lo, b.hi INTO v_lo, v_hi FROM audit_log_begin_drop(p_name) b;
    v_new := 'audit_log_gone' || substr(p_name, length('audit_log') + 1);
    EXECUTE format('ALTER TABLE audit_log DETACH PARTITION %I', p_name);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', p_name, v_new);
    RETURN v_new;
END
$fn$;

-- audit_log_drop_detached drops every table audit_log_detach_partition
-- left (also one a crash left between the two steps) and returns their
-- names. Only tables of this schema named <table>_gone_p..., owned by the
-- owner and no partition of anything, qualify.
CREATE FUNCTION audit_log_drop_detached()
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER
SET lock_timeout = '5s'
AS $fn$
DECLARE
    v_name  text;
    v_owner oid;
BEGIN
    SELECT relowner INTO STRICT v_owner FROM pg_catalog.pg_class WHERE oid = 'audit_log'::regclass;
    FOR v_name IN
        SELECT c.relname FROM pg_catalog.pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
          AND c.relowner = v_owner
          AND c.relname LIKE replace('audit_log_gone_p', '_', '\_') || '%'
    LOOP
        EXECUTE format('DROP TABLE %I', v_name);
        RETURN NEXT v_name;
    END LOOP;
END
$fn$;

DO $path$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['audit_log_detach_partition(text)', 'audit_log_drop_detached()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END
$path$;

REVOKE ALL ON FUNCTION audit_log_detach_partition(text), audit_log_drop_detached() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_detach_partition(text), audit_log_drop_detached() TO otelaudit_writer;
