-- Full-text search over logs: a tsvector column filled when a day CLOSES, with a GIN index on
-- (service, message_tsv) and a btree on timestamp per closed daily partition.
--
-- Why not a generated (stored) column: computing to_tsvector for every row at insert cut the
-- server's COPY rate to 0.42-0.55 of the same COPY without it (bench/bench_search_column.py,
-- 2026-12-06, interleaved rounds). Ingestion is the product's hot path; search is not.
-- Why not an expression GIN on to_tsvector(message): ANDed with the BRIN on timestamp it yields
-- lossy bitmaps whose recheck recomputes to_tsvector per row (p99 6.7 s for a search page).
-- So: today's partition has message_tsv NULL and no search index (its rows cost ingestion
-- nothing extra); `loganalyzer db maintain` (index_closed_log_partitions) rebuilds each closed
-- day once: a copy with message_tsv filled, every index built on the copy, then a brief swap
-- under a lock (seconds), so the day is written once more instead of updated in place (an
-- UPDATE would leave the partition twice its size until a VACUUM FULL).
-- Why 'simple': log lines are identifiers, paths and codes, not English prose; stemming would
-- fold distinct identifiers and costs more CPU per row.
CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE logs ADD COLUMN message_tsv tsvector;
COMMENT ON COLUMN logs.message_tsv IS 'to_tsvector(''simple'', message), filled when the day is closed (NULL on today''s partition)';

-- Rebuild one closed daily partition with message_tsv filled and the closed-day indexes
-- (service/time btree, search GIN, time btree) plus every index `logs` itself declares.
-- Rows written to the day while the copy runs (late events) are copied again under the lock;
-- the swap is refused (and everything rolled back) unless both tables hold the same rows.
CREATE FUNCTION rebuild_log_partition_for_search(part text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    lo timestamptz;
    hi timestamptz;
    tmp text := part || '_rebuild';
    started timestamptz := clock_timestamp();
    cols text;
    r record;
    n_old bigint;
    n_new bigint;
    suffix text;
    suffixes text[] := '{}';
BEGIN
    IF part !~ '^logs_p[0-9]{8}$' OR to_regclass(part) IS NULL THEN
        RAISE EXCEPTION 'rebuild_log_partition_for_search: % is not a daily logs partition', part;
    END IF;
    day := to_date(substr(part, 7), 'YYYYMMDD');
    lo := day::timestamp AT TIME ZONE 'UTC';
    hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
    FROM pg_attribute
    WHERE attrelid = 'logs'::regclass AND attnum > 0 AND NOT attisdropped
      AND attgenerated = '' AND attname <> 'message_tsv';

    EXECUTE format('DROP TABLE IF EXISTS %I', tmp);
    EXECUTE format('CREATE TABLE %I (LIKE logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', tmp);
    EXECUTE format(
        'INSERT INTO %I (%s, message_tsv) SELECT %s, to_tsvector(''simple''::regconfig, message) FROM %I',
        tmp, cols, cols, part);
    -- the indexes and unique constraints `logs` declares, so that ATTACH PARTITION below
    -- attaches them instead of building them while the lock is held
    FOR r IN
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, con.oid AS conoid
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = 'logs'::regclass
        WHERE i.indrelid = 'logs'::regclass
    LOOP
        suffix := substr(r.name, 6);
        suffixes := suffixes || suffix;
        IF r.conoid IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s',
                tmp, tmp || '_' || suffix, pg_get_constraintdef(r.conoid));
        ELSE
            EXECUTE regexp_replace(
                r.def, '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ',
                format('CREATE \1INDEX %I ON %I ', tmp || '_' || suffix, tmp));
        END IF;
    END LOOP;
    EXECUTE format('CREATE INDEX %I ON %I (tenant, service, "timestamp")', tmp || '_st', tmp);
    EXECUTE format('CREATE INDEX %I ON %I USING gin (service, message_tsv)', tmp || '_gin', tmp);
    EXECUTE format('CREATE INDEX %I ON %I ("timestamp")', tmp || '_t', tmp);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK ("timestamp" >= %L AND "timestamp" < %L)',
        tmp, tmp || '_bounds', lo, hi);

    -- The swap: writers and readers of logs wait for these seconds (late rows, counts, renames).
    LOCK TABLE logs IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'INSERT INTO %I (%s, message_tsv) SELECT %s, to_tsvector(''simple''::regconfig, message) FROM %I '
        'WHERE ingested_at >= %L ON CONFLICT DO NOTHING',
        tmp, cols, cols, part, started - interval '1 hour');
    EXECUTE format('SELECT count(*) FROM %I', part) INTO n_old;
    EXECUTE format('SELECT count(*) FROM %I', tmp) INTO n_new;
    IF n_old <> n_new THEN
        RAISE EXCEPTION 'rebuild of %: % rows in the copy, % in the partition; nothing changed', part, n_new, n_old;
    END IF;
    EXECUTE format('ALTER TABLE logs DETACH PARTITION %I', part);
    EXECUTE format('DROP TABLE %I', part);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tmp, part);
    EXECUTE format('ALTER TABLE logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, tmp || '_bounds');
    EXECUTE format('ALTER INDEX %I RENAME TO %I', tmp || '_st', part || '_service_time_idx');
    EXECUTE format('ALTER INDEX %I RENAME TO %I', tmp || '_gin', part || '_search_gin');
    EXECUTE format('ALTER INDEX %I RENAME TO %I', tmp || '_t', part || '_time_idx');
    FOREACH suffix IN ARRAY suffixes LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', tmp || '_' || suffix, part || '_' || suffix);
    END LOOP;
END;
$$;
COMMENT ON FUNCTION rebuild_log_partition_for_search(text) IS 'Rewrites one closed day with message_tsv filled and its search/closed-day indexes, then swaps it in';

-- Closed days (before `before`): each one without a search GIN is rebuilt (above); on days
-- rebuilt earlier, rows that arrived late get their message_tsv. Same signature as 002's, so
-- `loganalyzer db maintain` and the maintenance DAG do it all. Returns what it did.
CREATE OR REPLACE FUNCTION index_closed_log_partitions(before date) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'logs'::regclass
          AND c.relname ~ '^logs_p[0-9]{8}$'
          AND to_date(substr(c.relname, 7), 'YYYYMMDD') < before
        ORDER BY c.relname
    LOOP
        IF to_regclass(r.relname || '_search_gin') IS NULL THEN
            PERFORM rebuild_log_partition_for_search(r.relname);
            RETURN NEXT r.relname || '_service_time_idx';
            RETURN NEXT r.relname || '_search_gin';
            RETURN NEXT r.relname || '_time_idx';
        ELSE
            EXECUTE format(
                'UPDATE %I SET message_tsv = to_tsvector(''simple''::regconfig, message) WHERE message_tsv IS NULL',
                r.relname);
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                RETURN NEXT format('%s: %s late rows made searchable', r.relname, n);
            END IF;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION index_closed_log_partitions(date) IS 'Closed days: rebuild with search column and indexes once; later, make late rows searchable';
