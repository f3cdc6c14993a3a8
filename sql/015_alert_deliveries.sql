-- alert_deliveries: one row per (anomaly episode, event) that `loganalyzer alerts` has seen,
-- so that a restart neither loses nor repeats a Slack message. The consumer never writes here:
-- alerts follow the anomalies table from a separate process and cannot slow ingestion.
--
-- Life of a row: inserted 'pending' when the alerts process first sees the event (or 'skipped'
-- when no route takes it); 'sent' once the webhook answered 2xx (message_id groups the rows
-- that went out as one Slack message); rescheduled (attempts, last_error, next_attempt_at) after
-- a transient failure; 'failed' after a permanent one (Slack 400/403/404/410) or when too old.
CREATE TABLE alert_deliveries (
    anomaly_id        text        NOT NULL,
    event             text        NOT NULL,
    route             text,
    state             text        NOT NULL DEFAULT 'pending',
    attempts          integer     NOT NULL DEFAULT 0,
    last_error        text,
    rate_limited      boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    next_attempt_at   timestamptz NOT NULL,
    sent_at           timestamptz,
    message_id        uuid,
    group_size        integer,
    PRIMARY KEY (anomaly_id, event),
    CONSTRAINT alert_deliveries_event_check CHECK (event IN ('opened', 'resolved')),
    CONSTRAINT alert_deliveries_state_check CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    CONSTRAINT alert_deliveries_sent_check CHECK ((state = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT alert_deliveries_route_check CHECK (state = 'skipped' OR route IS NOT NULL)
);
-- the work queue (only pending rows, so it stays small however long the history): by due time,
-- and by age for giving up on the oldest
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_pending_age_idx ON alert_deliveries (created_at) WHERE state = 'pending';
-- the per-route rate limit counts the messages sent in the last minute
CREATE INDEX alert_deliveries_sent_idx ON alert_deliveries (sent_at) WHERE state = 'sent';
COMMENT ON TABLE alert_deliveries IS 'Slack alert delivery state per anomaly episode and event (opened/resolved)';
COMMENT ON COLUMN alert_deliveries.route IS 'Name of the route (never the webhook URL: it is a secret)';
COMMENT ON COLUMN alert_deliveries.rate_limited IS 'The event waited for the route''s rate limit and went out in a grouped message';
COMMENT ON COLUMN alert_deliveries.message_id IS 'Rows sent in one Slack message share this id';
COMMENT ON COLUMN alert_deliveries.group_size IS 'How many events the Slack message carried';

-- The alerts process finds new and changed episodes by updated_at (every upsert of the
-- consumer sets it), instead of a trigger on anomalies that would run inside ingestion.
CREATE INDEX anomalies_updated_at_idx ON anomalies (updated_at);
