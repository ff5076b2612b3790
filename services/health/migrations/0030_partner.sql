-- Issue #7: the partner's display name and how it answered in the last run (request counts by
-- class, latency percentiles), as JSON like the other facts.
ALTER TABLE integration_state ADD COLUMN partner_json TEXT NOT NULL DEFAULT '{}';
