-- Partner webhook events received per connection, keyed by the partner's event id, so the same
-- event delivered twice is dropped however far apart the deliveries are. `outcome` is what the
-- event did: read_pending (a targeted read of `stream` is wanted), read_started (`run_id` read
-- it), tombstoned, or ignored (older than what the store held, or naming no record).
CREATE TABLE IF NOT EXISTS webhook_events (
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_events_by_record
    ON webhook_events (tenant_id, connection_id, entity, external_id);
CREATE INDEX IF NOT EXISTS webhook_events_pending ON webhook_events (outcome, received_at);
