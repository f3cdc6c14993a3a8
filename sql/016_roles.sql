-- Least privilege: one NOLOGIN group role per deployable, none a superuser. A deployment
-- creates LOGIN users that are members of these (`CREATE ROLE consumer_1 LOGIN PASSWORD ...
-- IN ROLE loganalyzer_consumer`), so that a leaked credential can do only what its process
-- needs: the consumer cannot delete an anomaly, the API cannot write a log line, Grafana can
-- only read what it shows. docs/security.md lists the grants and why.
--
-- Roles belong to the cluster, not to one database: they are created only when missing, and a
-- concurrent migration of another database that created one first is not an error.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY[
        'loganalyzer_owner', 'loganalyzer_consumer', 'loganalyzer_api',
        'loganalyzer_grafana', 'loganalyzer_airflow', 'loganalyzer_alerts'
    ] LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
                EXECUTE format(
                    'CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
                    name
                );
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database
        END;
    END LOOP;
END;
$$;

-- The migrations' owner: owns every table, sequence and function of the schema, so that
-- schema changes need it and no application role can ALTER or DROP what it uses.
GRANT USAGE, CREATE ON SCHEMA public TO loganalyzer_owner;
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS name, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (  -- sequences owned by a column follow their table
              SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S'
          )
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO loganalyzer_owner', obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind = 'f'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO loganalyzer_owner', obj.name);
    END LOOP;
END;
$$;

-- Partition maintenance creates, indexes and drops tables, which only the owner may do: these
-- functions run with the owner's rights, for the roles granted EXECUTE below only.
ALTER FUNCTION ensure_log_partition(date) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION index_closed_log_partitions(date) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION drop_log_partitions_before(date) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION ensure_log_partition(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION index_closed_log_partitions(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_log_partitions_before(date) FROM PUBLIC;
ALTER FUNCTION rebuild_log_partition_for_search(text) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION rebuild_log_partition_for_search(text) FROM PUBLIC;

GRANT USAGE ON SCHEMA public
    TO loganalyzer_consumer, loganalyzer_api, loganalyzer_grafana, loganalyzer_airflow, loganalyzer_alerts;
-- every command checks at start that no migration is pending (loganalyzer.db.migrate)
GRANT SELECT ON schema_migrations
    TO loganalyzer_consumer, loganalyzer_api, loganalyzer_grafana, loganalyzer_airflow, loganalyzer_alerts;

-- The consumer: appends events, dead letters and patterns, opens/extends/resolves anomaly
-- episodes (an upsert), stores offsets and detector checkpoints with each batch (an upsert
-- under FOR UPDATE). It reads logs and patterns back to warm detection. It never deletes.
GRANT SELECT, INSERT ON logs, dead_letters TO loganalyzer_consumer;
GRANT SELECT, INSERT, UPDATE ON anomalies, log_patterns, ingest_offsets, detector_checkpoints
    TO loganalyzer_consumer;
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO loganalyzer_consumer;
GRANT EXECUTE ON FUNCTION ensure_log_partition(date) TO loganalyzer_consumer;

-- The API: reads what it serves and the key hashes it authenticates with; its only writes are
-- the anomaly actions (an operator state on the anomaly, a feedback row). Keys are created and
-- revoked by `loganalyzer api-key` run as the owner, not by the serving process.
GRANT SELECT ON logs, anomalies, hourly_metrics, log_patterns, dead_letters, api_keys, suppressions
    TO loganalyzer_api;
GRANT UPDATE (operator_state, operator_state_at, operator_state_until) ON anomalies TO loganalyzer_api;
GRANT SELECT, INSERT ON anomaly_feedback TO loganalyzer_api;

-- Grafana: read-only, on the tables its dashboards query (grafana/dashboards).
GRANT SELECT ON logs, anomalies, hourly_metrics, log_patterns, dead_letters TO loganalyzer_grafana;

-- Airflow tasks: the hourly rollup (recomputed idempotently: upsert, and a delete of an hour
-- being rebuilt), the daily export (reads logs), partition maintenance and retention.
GRANT SELECT ON logs, anomalies, log_patterns TO loganalyzer_airflow;
GRANT SELECT, INSERT, UPDATE, DELETE ON hourly_metrics TO loganalyzer_airflow;
GRANT EXECUTE ON FUNCTION ensure_log_partition(date), index_closed_log_partitions(date),
    drop_log_partitions_before(date), rebuild_log_partition_for_search(text) TO loganalyzer_airflow;

-- The alerts process: follows anomalies, records each delivery.
GRANT SELECT ON anomalies TO loganalyzer_alerts;
GRANT SELECT, INSERT, UPDATE ON alert_deliveries TO loganalyzer_alerts;
