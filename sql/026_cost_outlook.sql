-- cost_outlook and cost_outlook_what_if: next month's forecast (mean and 80 % interval) and this
-- month at other traffic levels, per tenant and for every tenant together, as of each measured
-- day; written by the cost_snapshot DAG (loganalyzer.batch.cost_outlook) right after it measured
-- the day, read by Grafana's Costs dashboard.
--
-- Why a table: Grafana reads the platform through SQL only, and the figures cannot be computed
-- in SQL without a second pricing (a forecast prices 400 simulated months). So the DAG calls the
-- cost engine the API's /api/v1/costs/forecast and /what-if call (forecast_month, what_if over
-- the same days read the same way) and stores the answers. Both are at the free tier `none`,
-- like cost_snapshots.cost_usd: free-tier allowances are per account and month, not per tenant.
-- Re-running a day replaces that day's rows (delete, cascading to the what-ifs, then insert).
CREATE TABLE cost_outlook (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day                 date        NOT NULL,
    tenant              text        COLLATE "C",
    region              text        NOT NULL,
    free_tier           text        NOT NULL,
    month_start         date        NOT NULL,
    days_measured       integer     NOT NULL CHECK (days_measured >= 1),
    month_estimate_usd  numeric(14, 2) NOT NULL CHECK (month_estimate_usd >= 0),
    forecast_month      date        NOT NULL,
    forecast_mean_usd   numeric(14, 2),
    forecast_low_usd    numeric(14, 2),
    forecast_high_usd   numeric(14, 2),
    forecast_point_usd  numeric(14, 2),
    history_days        integer     NOT NULL CHECK (history_days >= 1),
    replicates          integer     NOT NULL CHECK (replicates >= 1),
    method              text        NOT NULL,
    notes               text[]      NOT NULL DEFAULT '{}',
    forecast_error      text,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cost_outlook_day_tenant_key UNIQUE NULLS NOT DISTINCT (day, tenant),
    CONSTRAINT cost_outlook_month_check CHECK (
        extract(day FROM month_start) = 1 AND month_start <= day AND day < month_start + interval '1 month'
        AND forecast_month = (month_start + interval '1 month')::date
    ),
    CONSTRAINT cost_outlook_forecast_check CHECK (
        (forecast_error IS NULL) = (forecast_mean_usd IS NOT NULL)
        AND (forecast_mean_usd IS NULL) = (forecast_low_usd IS NULL)
        AND (forecast_mean_usd IS NULL) = (forecast_high_usd IS NULL)
        AND (forecast_mean_usd IS NULL) = (forecast_point_usd IS NULL)
    ),
    CONSTRAINT cost_outlook_interval_check CHECK (forecast_low_usd <= forecast_high_usd)
);
COMMENT ON TABLE cost_outlook IS 'Per measured day and tenant (NULL: all tenants): next month''s cost forecast and this month''s estimate, by the cost engine';
COMMENT ON COLUMN cost_outlook.day IS 'The measured day the outlook is computed as of (its history ends with this day)';
COMMENT ON COLUMN cost_outlook.tenant IS 'A tenant of cost_snapshots (''*'': shared costs), or NULL: every tenant together (the API''s admin answer without a tenant)';
COMMENT ON COLUMN cost_outlook.free_tier IS 'Free-tier plan priced with (none, as cost_snapshots.cost_usd)';
COMMENT ON COLUMN cost_outlook.days_measured IS 'Days of month_start''s month measured up to day';
COMMENT ON COLUMN cost_outlook.month_estimate_usd IS 'day''s month at the run rate of its measured days (combine_days): the what-ifs'' baseline, as GET /api/v1/costs/what-if';
COMMENT ON COLUMN cost_outlook.forecast_month IS 'First day of the forecast month: the month after day''s';
COMMENT ON COLUMN cost_outlook.forecast_mean_usd IS 'Mean of the priced bootstrap replicates (forecast_month); NULL when forecast_error says why there is none';
COMMENT ON COLUMN cost_outlook.forecast_low_usd IS '10th percentile of the replicates: low end of the 80 % interval';
COMMENT ON COLUMN cost_outlook.forecast_high_usd IS '90th percentile of the replicates: high end of the 80 % interval';
COMMENT ON COLUMN cost_outlook.forecast_point_usd IS 'Price of the fitted trend itself (no bootstrap)';
COMMENT ON COLUMN cost_outlook.history_days IS 'Measured days the forecast was given (the last 60 days up to day)';
COMMENT ON COLUMN cost_outlook.notes IS 'The forecast''s notes (short history, level change, gaps, ...)';
COMMENT ON COLUMN cost_outlook.forecast_error IS 'Why there is no forecast (e.g. fewer than 3 measured days); NULL when there is one';

CREATE TABLE cost_outlook_what_if (
    outlook_id  bigint  NOT NULL REFERENCES cost_outlook (id) ON DELETE CASCADE,
    multiplier  numeric NOT NULL CHECK (multiplier >= 0 AND multiplier <= 1000),
    total_usd   numeric(14, 2) NOT NULL CHECK (total_usd >= 0),
    delta_usd   numeric(14, 2) NOT NULL,
    PRIMARY KEY (outlook_id, multiplier)
);
COMMENT ON TABLE cost_outlook_what_if IS 'The outlook''s month at other traffic levels (what_if with traffic_multiplier), priced by the cost engine';
COMMENT ON COLUMN cost_outlook_what_if.multiplier IS 'Every service''s log volume times this (1: as measured)';
COMMENT ON COLUMN cost_outlook_what_if.total_usd IS 'The month''s cost at that traffic (scenario_total_usd of GET /api/v1/costs/what-if)';
COMMENT ON COLUMN cost_outlook_what_if.delta_usd IS 'total_usd minus cost_outlook.month_estimate_usd';

-- Owned by the migrations' owner like every table (sql/016_roles.sql).
ALTER TABLE cost_outlook OWNER TO loganalyzer_owner;
ALTER TABLE cost_outlook_what_if OWNER TO loganalyzer_owner;

-- The cost_snapshot DAG replaces a day's outlook (as it replaces the day's cost_snapshots rows);
-- Grafana's Costs dashboard reads it. The API computes its own answers and does not read these.
GRANT SELECT, INSERT, UPDATE, DELETE ON cost_outlook, cost_outlook_what_if TO loganalyzer_airflow;
GRANT SELECT ON cost_outlook, cost_outlook_what_if TO loganalyzer_grafana;

-- Grafana's Anomalies dashboard shows operator acknowledgements, resolves and suppressions. Only
-- these columns: a column added to anomaly_feedback later stays hidden from Grafana until granted.
-- key_id is the public id of the acting API key (la_<id>_<secret>), not its secret; api_keys
-- itself stays unreadable.
GRANT SELECT (id, tenant, anomaly_id, action, scope, service, pattern_template, anomaly_type, until,
              key_id, created_at, note)
    ON anomaly_feedback TO loganalyzer_grafana;
