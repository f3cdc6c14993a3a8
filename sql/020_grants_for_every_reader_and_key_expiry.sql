-- Least privilege, completed for what each process reads and writes today (checked against the
-- SQL of every route, DAG task and dashboard), and API keys that expire (rotation with overlap).
--
-- The roles of 016 lacked: the API's cost endpoints read cost_snapshots and its health check
-- reads ingest_offsets (how long ago the consumer wrote); Grafana's Costs dashboard reads
-- cost_snapshots; the cost_snapshot DAG replaces a day's rows (delete + upsert) and reads past
-- days; nightly_retrain reads operator feedback as labels; maintenance drops exported days one
-- partition at a time (a DROP TABLE, which only the owner may run: through the function below).

GRANT SELECT ON cost_snapshots, ingest_offsets TO loganalyzer_api;
GRANT SELECT ON cost_snapshots TO loganalyzer_grafana;
GRANT SELECT, INSERT, UPDATE, DELETE ON cost_snapshots TO loganalyzer_airflow;
GRANT SELECT ON anomaly_feedback TO loganalyzer_airflow;

-- One exported day's partition, by name: retention (dags/maintenance.py) drops only the days
-- whose export manifest exists, which drop_log_partitions_before(date) cannot know.
CREATE FUNCTION drop_log_partition(partition_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF partition_name !~ '^logs_p[0-9]{8}$' THEN
        RAISE EXCEPTION 'not a daily logs partition: %', partition_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'logs'::regclass AND c.relname = partition_name
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', partition_name);
    RETURN true;
END;
$$;
ALTER FUNCTION drop_log_partition(text) OWNER TO loganalyzer_owner;
REVOKE EXECUTE ON FUNCTION drop_log_partition(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drop_log_partition(text) TO loganalyzer_airflow;
COMMENT ON FUNCTION drop_log_partition(text) IS 'Retention of one exported day: drops logs_pYYYYMMDD if it is a partition of logs';

-- Statistics after maintenance: VACUUM needs the table's owner (PostgreSQL 15 has no MAINTAIN
-- privilege) and cannot run inside a function, so for the Airflow role autovacuum does the
-- vacuuming and maintenance refreshes the planner's statistics through this function, limited
-- to the tables updated in place (loganalyzer.batch.maintenance.VACUUM_TABLES).
CREATE FUNCTION analyze_table(table_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF table_name <> ALL (ARRAY['detector_checkpoints', 'ingest_offsets', 'anomalies', 'log_patterns',
                                'hourly_metrics', 'cost_snapshots', 'alert_deliveries']) THEN
        RAISE EXCEPTION 'analyze_table: % is not one of the tables maintenance analyzes', table_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass(format('public.%I', table_name)) IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('ANALYZE public.%I', table_name);
    RETURN true;
END;
$$;
ALTER FUNCTION analyze_table(text) OWNER TO loganalyzer_owner;
REVOKE EXECUTE ON FUNCTION analyze_table(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analyze_table(text) TO loganalyzer_airflow;

-- Rotation: `loganalyzer keys rotate` creates the successor and sets the old key to expire after
-- a grace period, so clients move over without an outage; past expires_at the key stops working
-- like a revoked one.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
COMMENT ON COLUMN api_keys.expires_at IS 'The key stops working at this time (set by keys rotate on the replaced key); NULL: no expiry';
ALTER TABLE api_keys ADD COLUMN replaced_by text COLLATE "C" REFERENCES api_keys (id);
COMMENT ON COLUMN api_keys.replaced_by IS 'The key that rotation created to replace this one';
