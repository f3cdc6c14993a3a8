-- search_log_page: one page of GET /api/v1/logs/search in one statement.
--
-- Why: the API walked the searched span from Python, one statement per window (1 minute, then
-- 4, 16, ...; an hour's own GIN; a closed day's GIN), so a search held its pooled connection
-- across several round trips, each also waiting for the one event loop to come back to it; with
-- 32 callers on 4 connections a page took ~8x that hold (p99 0.44-0.80 s at 10M logs). Here the
-- same walk runs inside PostgreSQL: the caller passes the span cut into segments newest first,
-- each with how it is searched, and the time budget; the function reads window by window and
-- stops at the page size or at the budget, all in one round trip.
--
-- Segments (lowers[i], uppers[i], kinds[i]), newest first, each within one UTC day:
--   's'  a closed day rebuilt for search (sql/014): its stored message_tsv and GIN;
--   'h'  an hour (or the open hour's first minutes) with its own partial GIN on
--        to_tsvector (loganalyzer.db.search_hours): read in one query for the whole segment, so
--        that the BRIN on timestamp narrows nothing and the planner does not AND it with the GIN;
--   'p'  lines without a search index: read through the BRIN, each line parsed, after the
--        substring test of `likes` (one pattern per lexeme every match holds; none for OR/NOT).
-- Windows grow x4 from first_window (capped at a day) as the old walk did; a 'p' window that found
-- lines sizes the next from the density it saw (twice what should fill the page, at least
-- min_parsed_window, at most x4), and without substring test a 'p' window is at most
-- max_unfiltered_window. Each window is its own dynamic statement (EXECUTE): a fresh plan that
-- knows how common the words are, never a generic one.
--
-- The budget is checked before each window but the first, so that every call makes progress.
-- Rows come back newest first; when the walk stops for the budget, a last row with only
-- resume_before set says where the next page starts (every line before that instant).
-- An empty or NULL q means no text condition (listing by the other filters).
--
-- Rights: SECURITY DEFINER, run as the owner of the schema, so that it may read a day's
-- partition directly (loganalyzer_api is granted SELECT on `logs` only, which gives it every row
-- of every partition through `logs` already: the function reads nothing the API could not);
-- EXECUTE for loganalyzer_api only. Every value the caller passes reaches the statements as a
-- parameter (USING), never as text; the partition's name is built from a date.
CREATE FUNCTION search_log_page(
    lowers timestamptz[],
    uppers timestamptz[],
    kinds text[],
    q text,
    likes text[],
    p_tenant text,
    p_service text,
    p_level text,
    after_ts timestamptz,
    after_partition integer,
    after_offset bigint,
    after_topic text,
    wanted integer,
    budget_ms integer,
    first_window interval DEFAULT interval '1 minute',
    min_parsed_window interval DEFAULT interval '10 seconds',
    max_unfiltered_window interval DEFAULT interval '5 minutes'
) RETURNS TABLE (
    "timestamp" timestamptz,
    tenant text,
    service text,
    host text,
    level text,
    message text,
    kafka_partition integer,
    kafka_offset bigint,
    kafka_topic text,
    resume_before timestamptz
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => budget_ms / 1000.0);
    has_q boolean := coalesce(q, '') <> '';
    filtered boolean := coalesce(cardinality(likes), 0) > 0;
    common text := '';
    select_rows text;
    part regclass;
    window_size interval := first_window;
    width interval;
    hi timestamptz;
    lo timestamptz;
    got bigint;
    found_rows bigint := 0;
    windows integer := 0;
    i integer;
    -- windows are measured back from now when the span ends later (the default `to` is a minute
    -- ahead, for clocks running fast): a first window of the future alone would find nothing
    now_at timestamptz := statement_timestamp();
BEGIN
    -- the conditions every window shares; parameters by number ($1 lower, $2 upper, $3 rows)
    IF p_tenant IS NOT NULL THEN common := common || ' AND tenant = $4'; END IF;
    IF p_service IS NOT NULL THEN common := common || ' AND service = $5'; END IF;
    IF p_level IS NOT NULL THEN common := common || ' AND level = $6'; END IF;
    IF after_ts IS NOT NULL THEN
        common := common || ' AND ("timestamp", kafka_partition, kafka_offset, kafka_topic) < ($7, $8, $9, $10)';
    END IF;
    FOR i IN 1 .. coalesce(cardinality(kinds), 0) LOOP
        -- a segment lies in one day: its partition is asked directly (a page's statements then
        -- cost half the time: no pruning among the partitions of `logs` to plan); a day without a
        -- partition has no lines (`logs` has no default partition)
        part := to_regclass(format('logs_p%s', to_char(lowers[i] AT TIME ZONE 'UTC', 'YYYYMMDD')));
        CONTINUE WHEN part IS NULL;
        select_rows := 'SELECT "timestamp", tenant::text, service::text, host::text, level, message, '
            || 'kafka_partition, kafka_offset, kafka_topic::text, NULL::timestamptz FROM '
            || CASE WHEN has_table_privilege(part, 'SELECT') THEN part::text ELSE 'logs' END
            || ' WHERE "timestamp" >= $1 AND "timestamp" < $2' || common;
        hi := uppers[i];
        WHILE hi > lowers[i] AND found_rows < wanted LOOP
            IF windows > 0 AND clock_timestamp() > deadline THEN
                RETURN QUERY SELECT NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::text,
                    NULL::text, NULL::integer, NULL::bigint, NULL::text, hi;
                RETURN;
            END IF;
            IF kinds[i] = 'h' THEN
                lo := lowers[i];
            ELSIF kinds[i] = 'p' AND NOT (has_q AND filtered) THEN
                lo := greatest(lowers[i], least(hi, now_at) - least(window_size, max_unfiltered_window));
            ELSE
                lo := greatest(lowers[i], least(hi, now_at) - window_size);
            END IF;
            RETURN QUERY EXECUTE select_rows
                || CASE
                       WHEN NOT has_q THEN ''
                       WHEN kinds[i] = 's' THEN ' AND message_tsv @@ websearch_to_tsquery(''simple'', $11)'
                       WHEN kinds[i] = 'p' AND filtered THEN
                           ' AND (octet_length(message) <> char_length(message) OR ('
                           || (SELECT string_agg(format('lower(message COLLATE "C") LIKE $12[%s]', k), ' AND ')
                               FROM generate_series(1, cardinality(likes)) AS k)
                           || ')) AND to_tsvector(''simple'', message) @@ websearch_to_tsquery(''simple'', $11)'
                       ELSE ' AND to_tsvector(''simple'', message) @@ websearch_to_tsquery(''simple'', $11)'
                   END
                || ' ORDER BY "timestamp" DESC, kafka_partition DESC, kafka_offset DESC, kafka_topic DESC'
                || ' LIMIT $3'
                USING lo, hi, wanted - found_rows, p_tenant, p_service, p_level,
                      after_ts, after_partition, after_offset, after_topic, q, likes;
            GET DIAGNOSTICS got = ROW_COUNT;
            found_rows := found_rows + got;
            windows := windows + 1;
            IF kinds[i] = 'p' AND has_q AND filtered AND got > 0 THEN
                window_size := least(
                    greatest((hi - lo) * (2.0 * (wanted - found_rows) / got), min_parsed_window),
                    window_size * 4);
            ELSE
                window_size := least(window_size * 4, interval '1 day');
            END IF;
            hi := lo;
        END LOOP;
        EXIT WHEN found_rows >= wanted;
    END LOOP;
END;
$$;

ALTER FUNCTION search_log_page(timestamptz[], timestamptz[], text[], text, text[], text, text, text,
    timestamptz, integer, bigint, text, integer, integer, interval, interval, interval) OWNER TO loganalyzer_owner;
COMMENT ON FUNCTION search_log_page(timestamptz[], timestamptz[], text[], text, text[], text, text, text,
    timestamptz, integer, bigint, text, integer, integer, interval, interval, interval) IS
    'One page of the log search walked inside the database: segments newest first, windows, a time budget';
REVOKE EXECUTE ON FUNCTION search_log_page(timestamptz[], timestamptz[], text[], text, text[], text, text, text,
    timestamptz, integer, bigint, text, integer, integer, interval, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_log_page(timestamptz[], timestamptz[], text[], text, text[], text, text, text,
    timestamptz, integer, bigint, text, integer, integer, interval, interval, interval) TO loganalyzer_api;
