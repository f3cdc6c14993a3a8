-- cost_snapshots (sql/011) gets the cost engine's price of each day, written by the cost_snapshot
-- DAG next to the quantities: dashboards read dollars the engine computed instead of pricing
-- usage again in SQL (one pricing, loganalyzer.costs).
--
-- A day is priced as loganalyzer.costs.daily.price_day does: its requests as measured, its
-- storage as one day of its month, no monthly free tier; so a month's cost_usd add up to the
-- month at free_tier none. Rows written before this migration stay NULL until their day is
-- measured again.
ALTER TABLE cost_snapshots
    ADD COLUMN cost_usd numeric(14, 2) CHECK (cost_usd >= 0),
    ADD COLUMN priced   jsonb CHECK (priced IS NULL OR jsonb_typeof(priced) = 'object');
COMMENT ON COLUMN cost_snapshots.cost_usd IS 'The day''s cost in USD by loganalyzer.costs.daily.price_day (total_usd of priced)';
COMMENT ON COLUMN cost_snapshots.priced IS 'The day''s quote (Quote.to_dict(): line items, services, totals as decimal strings)';
