-- Issue #7: freshness per entity, correctness warnings, incidents with timelines.
ALTER TABLE integration_state ADD COLUMN entities_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE integration_state ADD COLUMN warnings_json TEXT NOT NULL DEFAULT '[]';

-- An incident opens when an integration's status becomes a problem and resolves when it
-- works again (or is paused). `resolved_at` is empty while open; at most one is open per
-- integration, which the service keeps under the integration's row lock.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    worst_status TEXT NOT NULL,
    title TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    resolved_at TEXT NOT NULL DEFAULT ''
);

CREATE INDEX incidents_by_connection ON incidents (tenant, connection_id, opened_at);

-- The timeline of an incident: every status it went through, with the reason at the time.
CREATE TABLE incident_updates (
    incident_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
