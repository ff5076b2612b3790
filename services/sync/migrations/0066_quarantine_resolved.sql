-- A quarantined record that a later page imports (same connection, stream and external id) is
-- resolved in that page's transaction: when, and by which run (empty for a page committed
-- outside a run). ListQuarantine lists unresolved entries unless asked for every one.
ALTER TABLE quarantine ADD COLUMN resolved_at TEXT;
ALTER TABLE quarantine ADD COLUMN resolved_by_run_id TEXT;
-- What a page commit looks up: the unresolved entries of the page's records.
CREATE INDEX IF NOT EXISTS quarantine_unresolved_by_record
    ON quarantine (tenant_id, connection_id, stream, external_id) WHERE resolved_at IS NULL;
