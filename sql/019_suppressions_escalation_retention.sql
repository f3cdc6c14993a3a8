-- Operator suppressions honoured by the consumer, escalation of long-open episodes, and the
-- retention of alert_deliveries.

-- The consumer reads the active pattern suppressions (a cache re-read every few seconds) and
-- writes the anomaly rows they match muted: operator_state 'suppressed' until the suppression
-- ends (it already may UPDATE anomalies, sql/016).
GRANT SELECT ON suppressions TO loganalyzer_consumer;

-- 'escalated': one more message, once, for an episode still open (and not acknowledged,
-- resolved or suppressed by an operator) some minutes after its 'opened' message went out.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_event_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_event_check
    CHECK (event IN ('opened', 'resolved', 'escalated'));
COMMENT ON COLUMN alert_deliveries.event IS 'opened, resolved, or escalated (still open after the configured minutes; sent at most once)';
-- escalation looks for 'opened' rows sent long enough ago: the sent_at index of sql/015 serves it

-- Retention: the daily maintenance deletes settled rows (sent, failed, skipped) older than its
-- horizon, except those of episodes still open (their 'opened' row is what keeps them from
-- being alerted again).
GRANT DELETE ON alert_deliveries TO loganalyzer_airflow;
GRANT SELECT ON alert_deliveries TO loganalyzer_airflow;
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (created_at) WHERE state <> 'pending';
