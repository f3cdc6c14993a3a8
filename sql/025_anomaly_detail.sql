-- anomaly_detail: the document of GET /api/v1/anomalies/{id} in one statement.
--
-- Why: the route asked for the episode's window first and then for the document (two round
-- trips, each waiting for the API's one event loop to come back to it while holding a pooled
-- connection), and the document's statement named `logs`, so every call planned the
-- partitioned table (~0.6 ms of planning for ~0.15 ms of execution, measured with EXPLAIN
-- ANALYZE at 10M logs over 7 days). Here the window is read inside the database and the sample
-- lines are asked of the window's own daily partition when the window lies in one UTC day
-- (nothing to prune), and of a closed day with its (tenant, service, timestamp) index in two
-- range scans instead of four (planning ~0.2 ms instead of ~0.35, execution ~0.1 ms); a window
-- across midnight asks `logs` with its bounds as values, so that only its days are planned.
--
-- The document is what the route returned before, field for field (tests/integration/
-- test_api_anomalies.py): the episode, its explanation with up to 10 stored lines of the
-- service in the window (WARN/ERROR/FATAL first, then the window's first other lines: those of
-- its first minute, the rest of the window only when that minute holds fewer than 10), and the
-- operator feedback, newest first. NULL when there is no such episode for the tenant
-- (p_tenant NULL: any tenant, for an admin key).
--
-- Rights: SECURITY DEFINER, as search_log_page (sql/024): it reads a day's partition directly;
-- it reads nothing loganalyzer_api could not read through `logs`, `anomalies` and
-- `anomaly_feedback`. EXECUTE for loganalyzer_api only. Values reach the statements as
-- parameters; the partition's name is built from a date.
CREATE FUNCTION anomaly_detail(p_id text, p_tenant text) RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    a anomalies%ROWTYPE;
    src text := 'logs';
    part regclass;
    indexed boolean := false;
    others text;
    samples json;
    feedback json;
BEGIN
    SELECT * INTO a FROM anomalies WHERE id = p_id AND (p_tenant IS NULL OR tenant = p_tenant);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF (a.window_start AT TIME ZONE 'UTC')::date = (a.window_end AT TIME ZONE 'UTC')::date THEN
        part := to_regclass(format('logs_p%s', to_char(a.window_start AT TIME ZONE 'UTC', 'YYYYMMDD')));
        IF part IS NOT NULL THEN
            src := part::text;
            indexed := to_regclass(src || '_service_time_idx') IS NOT NULL;
        END IF;
    END IF;
    IF indexed THEN
        -- a closed day's (tenant, service, timestamp) index reads the window's lines in order: the
        -- first 10 other lines are one range scan that stops at the tenth
        others := $q$
            (SELECT false, "timestamp", host, level, message FROM %1$s
              WHERE tenant = $1 AND service = $2 AND "timestamp" BETWEEN $3 AND $4
                AND level NOT IN ('WARN', 'ERROR', 'FATAL')
              ORDER BY "timestamp" LIMIT 10)$q$;
    ELSE
        -- without it (today's partition: ingestion does not pay for that index) the lines come
        -- through the BRIN, which reads every block range the window touches, of all services:
        -- the window's first minute ($5) first, the rest only when that minute holds fewer than
        -- 10 other lines (a one-time filter), so the lines shown are the same
        others := $q$
            (SELECT false, "timestamp", host, level, message FROM %1$s
              WHERE tenant = $1 AND service = $2 AND "timestamp" BETWEEN $3 AND $5
                AND level NOT IN ('WARN', 'ERROR', 'FATAL')
              ORDER BY "timestamp" LIMIT 10)
            UNION ALL
            (SELECT false, "timestamp", host, level, message FROM %1$s
              WHERE tenant = $1 AND service = $2 AND "timestamp" > $5 AND "timestamp" <= $4
                AND level NOT IN ('WARN', 'ERROR', 'FATAL')
                AND (SELECT count(*) FROM (
                      SELECT FROM %1$s
                       WHERE tenant = $1 AND service = $2 AND "timestamp" BETWEEN $3 AND $5
                         AND level NOT IN ('WARN', 'ERROR', 'FATAL')
                       LIMIT 10) first_minute) < 10
              ORDER BY "timestamp" LIMIT 10)$q$;
    END IF;
    EXECUTE format($q$
        SELECT coalesce(json_agg(json_build_object('timestamp', s."timestamp", 'host', s.host,
                                                   'level', s.level, 'message', s.message)
                                 ORDER BY s.problem DESC, s."timestamp"), '[]'::json)
        FROM (SELECT * FROM (
            (SELECT true AS problem, "timestamp", host, level, message FROM %1$s
              WHERE tenant = $1 AND service = $2 AND "timestamp" BETWEEN $3 AND $4
                AND level IN ('WARN', 'ERROR', 'FATAL')
              ORDER BY "timestamp" LIMIT 10)
            UNION ALL $q$ || others || $q$) u
            ORDER BY u.problem DESC, u."timestamp" LIMIT 10) s
        $q$, src)
        INTO samples
        USING a.tenant, a.service, a.window_start, a.window_end,
              least(a.window_end, a.window_start + interval '1 minute');
    SELECT coalesce(json_agg(f ORDER BY f.created_at DESC, f.id DESC), '[]'::json) INTO feedback
    FROM (SELECT id, action, scope, until, key_id, created_at, note FROM anomaly_feedback
          WHERE anomaly_id = a.id ORDER BY created_at DESC, id DESC LIMIT 50) f;
    RETURN json_build_object(
        'id', a.id, 'tenant', a.tenant, 'service', a.service, 'type', a.anomaly_type,
        'severity', a.severity,
        'status', anomaly_effective_status(a.status, a.operator_state, a.operator_state_until),
        'window_start', a.window_start, 'window_end', a.window_end, 'detected_at', a.detected_at,
        'resolved_at', a.resolved_at, 'score', a.score, 'expected_value', a.expected_value,
        'actual_value', a.actual_value, 'description', a.description,
        'pattern_template', a.pattern_template, 'model_version', a.model_version,
        'explanation', json_build_object(
            'summary', a.description, 'expected_value', a.expected_value, 'actual_value', a.actual_value,
            'ratio', CASE WHEN a.expected_value > 0 THEN a.actual_value / a.expected_value END,
            'window_start', a.window_start, 'window_end', a.window_end,
            'pattern_template', a.pattern_template, 'sample_message', a.sample_message,
            'details', a.details,
            'sample_logs', samples),
        'feedback', feedback
    )::text;
END;
$$;

ALTER FUNCTION anomaly_detail(text, text) OWNER TO loganalyzer_owner;
COMMENT ON FUNCTION anomaly_detail(text, text) IS
    'GET /api/v1/anomalies/{id}: the episode, its explanation with sample lines, and its feedback, as JSON text';
REVOKE EXECUTE ON FUNCTION anomaly_detail(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION anomaly_detail(text, text) TO loganalyzer_api;
